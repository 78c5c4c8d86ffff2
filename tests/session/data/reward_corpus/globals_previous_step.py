# State kept between calls in module globals: the previous step's speed and steering, reset each episode.
import math

prev_speed = None
prev_steering = None
prev_progress = 0.0


def reward_function(params):
    global prev_speed, prev_steering, prev_progress

    if params['steps'] <= 2:        # a new episode
        prev_speed, prev_steering, prev_progress = None, None, 0.0

    speed = params['speed']
    steering = params['steering_angle']
    reward = 1.0

    if prev_speed is not None:
        # smooth driving: penalise big jumps in steering, reward keeping speed
        if abs(steering - prev_steering) > 15:
            reward *= 0.6
        if speed >= prev_speed:
            reward += 0.2
    gained = params['progress'] - prev_progress
    if gained > 0:
        reward += min(gained, 2.0)

    prev_speed, prev_steering, prev_progress = speed, steering, params['progress']
    if params['is_offtrack']:
        reward = 1e-3
    return float(reward * math.exp(-params['distance_from_center']))
