def reward_function(params):
    """Reward staying near the centre line and not zig-zagging (DeepRacer's classic starter reward).

    The simulator calls this once per step with the current state in `params`; return a float. Edit it,
    then run `deepracer validate` before training: it dry-runs this function on the real track.
    """
    distance_from_center = params["distance_from_center"]
    track_width = params["track_width"]
    steering = abs(params["steering_angle"])

    # Three bands around the centre line, each worth less than the one inside it.
    if distance_from_center <= 0.1 * track_width:
        reward = 1.0
    elif distance_from_center <= 0.25 * track_width:
        reward = 0.5
    elif distance_from_center <= 0.5 * track_width:
        reward = 0.1
    else:
        reward = 1e-3  # likely crashed or close to off track

    # Penalise sharp steering: it makes the car wobble on straights.
    if steering > 15:
        reward *= 0.8

    return float(reward)
