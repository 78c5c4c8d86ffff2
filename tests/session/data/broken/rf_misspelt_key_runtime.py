def reward_function(params):
    key = "track_" + "widht"
    half = params[key] / 2
    return 1.0 if params["distance_from_center"] < half else 1e-3
