def reward_function(params):
    # steps is a float (2.0, 3.0, ...): range() refuses it.
    bonus = sum(1 for _ in range(params["steps"])) / 1000
    return 1.0 + bonus
