# Head-to-bot: bots move (objects_speed), the camera may see one; reward overtaking on the other lane.


def reward_function(params):
    if not params['all_wheels_on_track']:
        return 1e-3
    reward = 1.0
    speeds = params['objects_speed']
    if speeds:
        _, nxt = params['closest_objects']
        same_side = params['objects_left_of_center'][nxt] == params['is_left_of_center']
        gap = params['objects_distance'][nxt] - params['projection_distance']
        faster = params['speed'] > speeds[nxt]
        if params['object_in_camera'] and same_side:
            reward *= 0.4
        elif faster and 0 < gap < 2.0:
            reward += 1.0   # closing in on the other lane: overtaking
        if params['objects_heading'][nxt] and abs(params['objects_heading'][nxt]) > 10:
            reward += 0.0   # bot heading is in radians; nothing to do with it here
    return float(reward + params['speed'] / 4)
