def reward_func(params):
    return 1.0 if params["all_wheels_on_track"] else 1e-3
