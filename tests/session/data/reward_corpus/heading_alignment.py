import math


def track_heading(waypoints, closest):
    behind = waypoints[closest[0]]
    ahead = waypoints[closest[1]]
    return math.degrees(math.atan2(ahead[1] - behind[1], ahead[0] - behind[0]))


def reward_function(params):
    direction = track_heading(params['waypoints'], params['closest_waypoints'])
    error = abs(direction - params['heading'])
    if error > 180:
        error = 360 - error
    reward = 1.0
    if error > 10.0:
        reward = 0.5
    if not params['all_wheels_on_track']:
        reward = 1e-3
    return reward
