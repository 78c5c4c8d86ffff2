# Track sections as an Enum, with the waypoint ranges a builder marked by hand.
from enum import Enum


class Section(Enum):
    STRAIGHT = "straight"
    CURVE = "curve"
    HAIRPIN = "hairpin"


SECTIONS = [
    (range(0, 22), Section.STRAIGHT),
    (range(22, 45), Section.CURVE),
    (range(45, 70), Section.STRAIGHT),
    (range(70, 95), Section.HAIRPIN),
    (range(95, 120), Section.CURVE),
]
WANTED = {Section.STRAIGHT: (3.5, 0.0), Section.CURVE: (2.2, 15.0), Section.HAIRPIN: (1.5, 25.0)}


def section_of(index):
    for indices, section in SECTIONS:
        if index in indices:
            return section
    return Section.STRAIGHT   # the rest of the lap


def reward_function(params):
    section = section_of(params["closest_waypoints"][1])
    speed, steering = WANTED[section]
    reward = 1.0
    reward -= min(abs(params["speed"] - speed) / 4.0, 0.5)
    reward -= min(abs(abs(params["steering_angle"]) - steering) / 60.0, 0.4)
    if params["is_offtrack"]:
        reward = 1e-3
    return float(reward)
