# For a continuous (SAC or PPO) action space: reward speed relative to the steering, as builders of continuous
# models do to avoid slow, wobbly policies.
import math

MAX_SPEED = 4.0
MAX_STEER = 30.0


def reward_function(params):
    speed = params['speed'] / MAX_SPEED
    steer = abs(params['steering_angle']) / MAX_STEER
    balance = speed * (1.0 - 0.5 * steer)
    centre = 1.0 - min(params['distance_from_center'] / (params['track_width'] / 2), 1.0)
    reward = 0.6 * balance + 0.4 * centre
    if params['progress'] == 100:
        reward += 10.0
    if params['is_offtrack'] or params['is_reversed'] and params['speed'] < 0.5:
        reward = 1e-3
    return float(max(reward, 1e-3) + 0 * math.pi)
