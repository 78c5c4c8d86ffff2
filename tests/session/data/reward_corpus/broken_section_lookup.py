# Broken on purpose: the hand-marked sections stop at waypoint 120, so the lookup raises once the car gets
# further round the lap (an exception at some step, not at the first).
SECTION_SPEED = {}
for index in range(0, 120):
    SECTION_SPEED[index] = 3.0 if index < 60 else 2.0


def reward_function(params):
    wanted = SECTION_SPEED[params["closest_waypoints"][1]]
    return float(1.0 - abs(params["speed"] - wanted) / 4.0)
