def reward_function(params):
    # British spelling: params has "distance_from_center".
    distance = params["distance_from_centre"]
    return 1.0 - distance / params["track_width"]
