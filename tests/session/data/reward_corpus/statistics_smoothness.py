# statistics.pstdev over the last steering angles: a smoothness term.
import statistics

window = []


def reward_function(params):
    global window
    if params['steps'] <= 2:
        window = []
    window = (window + [params['steering_angle']])[-6:]
    jitter = statistics.pstdev(window) if len(window) > 1 else 0.0
    smooth = 1.0 / (1.0 + jitter / 5.0)
    on = 1.0 if params['all_wheels_on_track'] else 0.0
    return float(1e-3 + on * (0.5 + 0.5 * smooth))
