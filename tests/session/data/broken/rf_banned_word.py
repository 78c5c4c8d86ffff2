def reward_function(params):
    saved_progress = params["progress"]
    return 1.0 + saved_progress / 100
