def reward_function(params):
    return "fast" if params["speed"] > 2 else "slow"
