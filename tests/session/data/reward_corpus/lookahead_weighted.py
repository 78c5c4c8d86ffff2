# Several lookahead distances, each weighted, compared with the car's heading.
import math

WEIGHTS = {1: 0.4, 3: 0.3, 6: 0.2, 10: 0.1}


def reward_function(params):
    wps = params["waypoints"]
    n = len(wps)
    here = params["closest_waypoints"][0]
    x, y, heading = params["x"], params["y"], params["heading"]
    total = 0.0
    for ahead, weight in WEIGHTS.items():
        tx, ty = wps[(here + ahead) % n]
        wanted = math.degrees(math.atan2(ty - y, tx - x))
        error = abs((wanted - heading + 180) % 360 - 180)
        total += weight * max(0.0, 1.0 - error / 90.0)
    if params["is_offtrack"]:
        return 1e-3
    return total + 1e-3
