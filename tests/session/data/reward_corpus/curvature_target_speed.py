# Look a few waypoints ahead, estimate the curve, and ask for a speed that fits it.
import math

LOOKAHEAD = 5
MIN_SPEED, MAX_SPEED = 1.3, 4.0


def angle(a, b):
    return math.atan2(b[1] - a[1], b[0] - a[0])


def turn_ahead(waypoints, index):
    n = len(waypoints)
    here = waypoints[index % n]
    near = waypoints[(index + 1) % n]
    far = waypoints[(index + LOOKAHEAD) % n]
    diff = math.degrees(angle(near, far) - angle(here, near))
    return abs((diff + 180) % 360 - 180)


def reward_function(params):
    turn = turn_ahead(params["waypoints"], params["closest_waypoints"][1])
    wanted = MAX_SPEED - (MAX_SPEED - MIN_SPEED) * min(turn / 45.0, 1.0)
    speed_reward = math.exp(-((params["speed"] - wanted) ** 2) / 0.5)
    centre = 1.0 - min(params["distance_from_center"] / (0.5 * params["track_width"]), 1.0)
    reward = 0.7 * speed_reward + 0.3 * centre
    return float(reward) if not params["is_offtrack"] else 1e-3
