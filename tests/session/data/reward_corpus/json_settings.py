# Weights kept as a JSON document so a notebook can paste new ones in: json.loads at import.
import json

SETTINGS = json.loads("""
{
  "weights": {"centre": 1.0, "speed": 0.5, "heading": 0.5},
  "max_speed": 4.0,
  "steering_limit": 20
}
""")


def reward_function(params):
    w = SETTINGS["weights"]
    centre = 1.0 - params["distance_from_center"] / (params["track_width"] / 2)
    speed = params["speed"] / SETTINGS["max_speed"]
    calm = 1.0 if abs(params["steering_angle"]) <= SETTINGS["steering_limit"] else 0.3
    reward = w["centre"] * max(centre, 0.0) + w["speed"] * speed + w["heading"] * calm
    return float(reward) if params["all_wheels_on_track"] else 1e-3
