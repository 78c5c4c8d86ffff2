# A logger for debugging in the simulator's log (the console refused `import logging`).
import logging
import math

log = logging.getLogger("reward")
logging.basicConfig(level=logging.INFO)


def reward_function(params):
    reward = math.cos(math.radians(params["steering_angle"])) * (1.0 - params["distance_from_center"]
                                                                 / params["track_width"])
    if params["steps"] % 50 == 0:
        log.info("step %s progress %.1f reward %.3f", params["steps"], params["progress"], reward)
    return max(reward, 1e-3)
