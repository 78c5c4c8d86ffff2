# Speed zones by waypoint index, looked up with bisect: the console refused `import bisect`, the simulator does not.
import bisect

# zone starts (waypoint index) and the speed wanted from there on, reInvent2019_track
ZONE_STARTS = [0, 20, 41, 60, 85, 110, 140]
ZONE_SPEEDS = [3.5, 2.0, 3.8, 1.8, 2.5, 3.8, 2.2]


def target_speed(waypoint):
    zone = bisect.bisect_right(ZONE_STARTS, waypoint) - 1
    return ZONE_SPEEDS[zone]


def reward_function(params):
    nxt = params['closest_waypoints'][1]
    wanted = target_speed(nxt)
    reward = 1.0 - min(abs(params['speed'] - wanted) / wanted, 1.0)
    if params['is_offtrack']:
        reward = 0.0
    return float(reward + 1e-3)
