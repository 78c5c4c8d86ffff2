# Keep all four wheels on the road with a margin to the border.

MARGIN = 0.05  # metres


def reward_function(params):
    on_track = params["all_wheels_on_track"]
    half_width = params["track_width"] / 2.0
    room = half_width - params["distance_from_center"]
    if not on_track or room < MARGIN:
        return 1e-3
    return 1.0
