# collections: a deque of recent steps and a namedtuple per step.
from collections import deque, namedtuple
import math

Step = namedtuple("Step", "x y speed progress")
recent = deque(maxlen=8)


def reward_function(params):
    if params["steps"] <= 2:
        recent.clear()
    recent.append(Step(params["x"], params["y"], params["speed"], params["progress"]))
    reward = 1.0
    if len(recent) >= 2:
        first, last = recent[0], recent[-1]
        travelled = math.hypot(last.x - first.x, last.y - first.y)
        reward += travelled / len(recent)          # metres per step, recent average
        if last.progress < first.progress:         # wrapped or went backwards
            reward *= 0.5
    if not params["all_wheels_on_track"]:
        reward = 1e-3
    return float(reward)
