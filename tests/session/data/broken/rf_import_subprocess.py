from subprocess import run


def reward_function(params):
    run(["true"])
    return 1.0
