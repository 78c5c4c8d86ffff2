import math


def reward_function(params):
    # An object-avoidance reward used on a time trial: there are no objects.
    obstacle = params["objects_location"][params["closest_objects"][1]]
    gap = math.hypot(obstacle[0] - params["x"], obstacle[1] - params["y"])
    return 1.0 if gap > 0.5 else 1e-3
