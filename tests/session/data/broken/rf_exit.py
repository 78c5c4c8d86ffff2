def reward_function(params):
    if params["is_offtrack"]:
        exit(1)
    return 1.0
