import os


def reward_function(params):
    os.makedirs("/tmp/rewards", exist_ok=True)
    return 1.0
