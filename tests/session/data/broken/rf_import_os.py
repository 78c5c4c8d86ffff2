import os


def reward_function(params):
    os.makedirs("rewards", exist_ok=True)  # relative: the dry run's scratch folder, the simulator's work folder
    return 1.0
