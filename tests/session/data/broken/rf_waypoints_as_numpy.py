def reward_function(params):
    # waypoints is a list of (x, y) tuples, not a numpy array.
    xs = params["waypoints"][:, 0]
    return 1.0 if len(xs) else 0.0
