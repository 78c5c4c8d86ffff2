from .helpers import centre_reward


def reward_function(params):
    return centre_reward(params)
