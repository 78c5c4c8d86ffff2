# Object avoidance with objects_distance (metres along the track) and the bearing to the next object.
import math


def reward_function(params):
    reward = 1.0
    if params["is_crashed"] or params["is_offtrack"]:
        return 1e-3
    locations = params["objects_location"]
    distances = params["objects_distance"]
    if locations:
        prev_i, next_i = params["closest_objects"]
        ahead = (distances[next_i] - params["projection_distance"]) % params["track_length"]
        if ahead < 1.5:
            ox, oy = locations[next_i]
            bearing = math.degrees(math.atan2(oy - params["y"], ox - params["x"]))
            off = abs((bearing - params["heading"] + 180) % 360 - 180)
            # pointing straight at it is bad, passing beside it is good
            reward *= 0.2 + 0.8 * min(off / 45.0, 1.0)
            if params["objects_left_of_center"][next_i] == params["is_left_of_center"]:
                reward *= 0.5
        behind = (params["projection_distance"] - distances[prev_i]) % params["track_length"]
        if behind < 0.5:
            reward += 0.5   # just passed one
    return float(reward)
