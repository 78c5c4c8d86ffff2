# numpy: fit the upcoming waypoints and steer toward the fitted direction.
import numpy as np


def reward_function(params):
    pts = np.asarray(params["waypoints"], dtype=float)
    i = params["closest_waypoints"][1]
    ahead = np.take(pts, range(i, i + 6), axis=0, mode="wrap")
    steps = np.arange(len(ahead))
    dx = np.polyfit(steps, ahead[:, 0], 1)[0]
    dy = np.polyfit(steps, ahead[:, 1], 1)[0]
    wanted = np.degrees(np.arctan2(dy, dx))
    error = abs((wanted - params["heading"] + 180.0) % 360.0 - 180.0)
    reward = np.clip(1.0 - error / 60.0, 0.0, 1.0) + 1e-3
    if not params["all_wheels_on_track"]:
        reward = 1e-3
    return float(reward)
