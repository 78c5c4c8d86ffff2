# State on a class (class attributes), no instance: a pattern from forum posts.


class Memory:
    episode_start_steps = 0
    best_progress = 0.0
    history = []


def reward_function(params):
    if params["steps"] <= 2:
        Memory.history = []
        Memory.best_progress = 0.0
    Memory.history.append(params["speed"])
    if len(Memory.history) > 10:
        Memory.history.pop(0)

    average_speed = sum(Memory.history) / len(Memory.history)
    reward = average_speed / 4.0
    if params["progress"] > Memory.best_progress:
        reward += 0.5
        Memory.best_progress = params["progress"]
    if not params["all_wheels_on_track"]:
        reward = 1e-3
    return max(float(reward), 1e-3)
