def reward_function(params):
    import math
    return math.exp(-params["distance_from_center"])
