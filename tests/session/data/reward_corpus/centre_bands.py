# Beginner style: reward bands around the centre line, the first thing most builders train.


def reward_function(params):
    width = params["track_width"]
    off_centre = params["distance_from_center"]

    # three bands, narrow to wide
    bands = [(0.1, 1.0), (0.25, 0.5), (0.5, 0.1)]
    for fraction, value in bands:
        if off_centre <= fraction * width:
            return float(value)
    return 1e-3  # at the edge or beyond
