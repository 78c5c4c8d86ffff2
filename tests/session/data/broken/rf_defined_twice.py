def reward_function(params):
    return 1.0 if params["all_wheels_on_track"] else 1e-3


def reward_function(params):
    return 1.0 - params["distance_from_center"] / params["track_width"]
