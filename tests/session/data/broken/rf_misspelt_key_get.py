def reward_function(params):
    if not params.get("all_wheels_on_trak", True):
        return 1e-3
    return 1.0
