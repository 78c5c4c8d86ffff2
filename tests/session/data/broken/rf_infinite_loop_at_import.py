WAYPOINTS_SEEN = 0
while True:
    WAYPOINTS_SEEN += 1


def reward_function(params):
    return 1.0
