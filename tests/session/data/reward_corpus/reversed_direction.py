# Trained with DR_TRAIN_ALTERNATE_DRIVING_DIRECTION: is_reversed flips which waypoint is ahead and which
# side is "inside".
import math


def reward_function(params):
    waypoints = params["waypoints"]
    behind, ahead = params["closest_waypoints"]
    a, b = waypoints[behind], waypoints[ahead]
    direction = math.degrees(math.atan2(b[1] - a[1], b[0] - a[0]))
    error = abs((direction - params["heading"] + 180) % 360 - 180)

    # the inside of a ccw track's corners is the left; driving it reversed, the right
    inside = params["is_left_of_center"] != params["is_reversed"]
    reward = 1.0 - error / 180.0
    if inside and params["distance_from_center"] < 0.3 * params["track_width"]:
        reward += 0.3
    return max(float(reward), 1e-3)
