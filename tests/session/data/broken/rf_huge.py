def reward_function(params):
    reward = 1.0
    if params["progress"] == 100:
        reward += 200000  # lap bonus
    return reward
