# Broken on purpose: a debugging leftover returns (reward, speed); the simulator's float() refuses a tuple.
import math


def reward_function(params):
    reward = math.exp(-params["distance_from_center"])
    return reward, params["speed"]
