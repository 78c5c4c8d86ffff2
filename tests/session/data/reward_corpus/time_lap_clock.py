# Wall-clock and simulation time: `import time`, which only the console refused.
import time

started_at = time.time()
episode_clock = {"start": None}


def reward_function(params):
    now = params.get("sim_time", time.time() - started_at)
    if params["steps"] <= 2 or episode_clock["start"] is None:
        episode_clock["start"] = now
    elapsed = max(now - episode_clock["start"], 1e-3)
    reward = 1e-3
    if params["all_wheels_on_track"]:
        reward = 1.0 + params["progress"] / (elapsed * 10.0)
    return float(min(reward, 1000.0))
