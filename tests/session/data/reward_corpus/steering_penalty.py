# Centre bands plus a penalty for steering hard, against zig-zagging.


def reward_function(params):
    width = params['track_width']
    dist = params['distance_from_center']
    steer = abs(params['steering_angle'])

    if dist <= 0.1 * width:
        reward = 1.0
    elif dist <= 0.25 * width:
        reward = 0.5
    elif dist <= 0.5 * width:
        reward = 0.1
    else:
        reward = 1e-3

    STEERING_LIMIT = 15.0   # degrees; tuned for a +-30 action space
    if steer > STEERING_LIMIT:
        reward *= 0.8
    return float(reward)
