def reward_function(params):
    if params["progress"] == 100:
        return float("inf")  # "the biggest possible bonus"
    return 1.0
