"""What would break training, found before it starts: settings, custom files, the reward dry run, tracks, and the
host's health (the doctor)."""
