HALF_WIDTH = params["track_width"] / 2


def reward_function(params):
    return 1.0
