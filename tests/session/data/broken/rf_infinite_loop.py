def reward_function(params):
    reward = 1.0
    while reward > 0:
        reward = reward * 0.5 + 0.5
    return reward
