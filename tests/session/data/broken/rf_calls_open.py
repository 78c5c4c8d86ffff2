def reward_function(params):
    with open("steps.txt", "a") as log:  # relative: the dry run's scratch folder, the simulator's work folder
        log.write(str(params["steps"]))
    return 1.0
