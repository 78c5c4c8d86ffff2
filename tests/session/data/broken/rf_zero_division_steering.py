def reward_function(params):
    return min(1.0, 1.0 / abs(params["steering_angle"]))
