def reward_function(params):
    # Closer to the centre line is better... until the car is exactly on it.
    return min(1.0, 0.01 / params["distance_from_center"])
