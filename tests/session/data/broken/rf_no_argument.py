def reward_function():
    return 1.0
