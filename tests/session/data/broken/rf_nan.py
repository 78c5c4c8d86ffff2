import math


def reward_function(params):
    # inf - inf is NaN: the "penalty" cancels into nonsense when the car leaves the track.
    penalty = math.inf if params["is_offtrack"] else 0.0
    return 1.0 + penalty - penalty
