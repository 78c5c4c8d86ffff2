# Object avoidance: stay in bounds and keep away from the next box when it is in our lane.
import math


def lane_reward(params):
    inside = params['all_wheels_on_track'] and \
        params['track_width'] / 2 - params['distance_from_center'] >= 0.05
    return 1.0 if inside else 1e-3


def avoid_reward(params):
    objects = params['objects_location']
    if not objects:
        return 1.0
    _, ahead = params['closest_objects']
    ox, oy = objects[ahead]
    gap = math.hypot(params['x'] - ox, params['y'] - oy)
    if params['objects_left_of_center'][ahead] != params['is_left_of_center']:
        return 1.0
    if gap < 0.3:
        return 1e-3
    if gap < 0.5:
        return 0.2
    if gap < 0.8:
        return 0.5
    return 1.0


def reward_function(params):
    return 1e-3 + 1.0 * lane_reward(params) + 4.0 * avoid_reward(params)
