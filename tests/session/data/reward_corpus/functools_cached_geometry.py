# Geometry of the track computed once per track and cached (functools.lru_cache keyed on hashable values).
import functools
import math


@functools.lru_cache(maxsize=8)
def segment_headings(points):
    n = len(points)
    return tuple(math.degrees(math.atan2(points[(i + 1) % n][1] - points[i][1],
                                         points[(i + 1) % n][0] - points[i][0])) for i in range(n))


def reward_function(params):
    points = tuple(tuple(p) for p in params['waypoints'])
    headings = segment_headings(points)
    here = params['closest_waypoints'][0]
    error = abs((headings[here] - params['heading'] + 180) % 360 - 180)
    reward = math.cos(math.radians(min(error, 89.0)))
    return float(reward) if params['all_wheels_on_track'] else 1e-3
