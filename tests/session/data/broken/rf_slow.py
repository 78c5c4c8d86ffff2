import math


def reward_function(params):
    # Recomputes a heavy value on every step.
    total = 0.0
    for i in range(1, 60000):
        total += math.sqrt(i) * math.sin(i)
    return 1.0 - params["distance_from_center"] / params["track_width"] if total else 0.5
