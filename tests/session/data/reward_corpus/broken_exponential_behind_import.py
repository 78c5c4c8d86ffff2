# Broken on purpose: an exponential progress reward grows past the simulator's 1e5 limit late in an episode,
# behind stdlib imports the retired console refused (so its dry run never got this far).
import json
import time

CONFIG = json.loads('{"base": 1.25}')
STARTED = time.time()


def reward_function(params):
    if not params["all_wheels_on_track"]:
        return 1e-3
    return float(CONFIG["base"] ** params["steps"])
