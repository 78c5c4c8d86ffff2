# Progress per step: rewards pace rather than position. steps is a float in the simulator.


def reward_function(params):
    steps = params["steps"]
    progress = params["progress"]
    if not params["all_wheels_on_track"]:
        return 1e-3
    if steps <= 0:
        return 1e-3
    pace = progress / steps          # % of the lap per step
    reward = 1.0 + 10.0 * pace
    if progress == 100:
        reward += 500.0 / steps * 100  # finish bonus, larger for fewer steps
    return float(reward)
