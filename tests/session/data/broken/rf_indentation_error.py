def reward_function(params):
    reward = 1.0
      if params["is_offtrack"]:
        reward = 1e-3
    return reward
