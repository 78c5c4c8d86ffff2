def reward_function(params):
    reward = 1.0 - params["distance_from_center"] / params["track_width"]
    return [reward]
