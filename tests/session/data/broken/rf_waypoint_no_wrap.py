import math


def reward_function(params):
    waypoints = params["waypoints"]
    prev_index, next_index = params["closest_waypoints"]
    # Looks one waypoint further ahead without wrapping around the end of the list.
    ahead = waypoints[next_index + 1]
    here = waypoints[next_index]
    direction = math.degrees(math.atan2(ahead[1] - here[1], ahead[0] - here[0]))
    diff = abs(direction - params["heading"])
    return 1.0 if diff < 10 else 0.5
