"""This machine: its first-boot state, and the one factory that opens a Host (settings, storage, engine) for
every command.
"""
