"""The Docker edge: the engine client and the specs of the simulator's containers (trainer, workers)."""
