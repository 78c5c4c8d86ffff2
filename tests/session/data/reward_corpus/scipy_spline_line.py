# A smooth line through the track's own waypoints, made with scipy's splines on the first call (the waypoints
# only arrive in params) and kept for the rest of the run.
import numpy as np
from scipy import interpolate

cache = {}


def smooth_line(waypoints):
    key = (len(waypoints), waypoints[0])
    if key not in cache:
        pts = np.asarray(waypoints, dtype=float)
        keep = np.r_[True, np.any(np.diff(pts, axis=0) != 0, axis=1)]   # splprep refuses repeated points
        pts = pts[keep]
        tck, _ = interpolate.splprep([pts[:, 0], pts[:, 1]], s=0.5, per=False)
        u = np.linspace(0, 1, 400)
        cache[key] = np.column_stack(interpolate.splev(u, tck))
    return cache[key]


def reward_function(params):
    line = smooth_line(params["waypoints"])
    gaps = np.hypot(line[:, 0] - params["x"], line[:, 1] - params["y"])
    off = float(gaps.min())
    reward = max(1e-3, 1.0 - off / (params["track_width"] / 2))
    return float(reward)
