"""A training or evaluation run: its params, starting and stopping its containers, increments, and reading its
progress.
"""
