import math


def reward_function(params):
    margin = math.sqrt(params["distance_from_center"] - 0.05)
    return 1.0 / (1.0 + margin)
