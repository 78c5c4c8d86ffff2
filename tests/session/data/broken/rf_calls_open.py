def reward_function(params):
    with open("/tmp/steps.txt", "a") as log:
        log.write(str(params["steps"]))
    return 1.0
