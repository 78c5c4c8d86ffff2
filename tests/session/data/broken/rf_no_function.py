# The body of a reward function pasted without its def line.
REWARD = 1.0
