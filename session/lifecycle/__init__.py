"""The host's unattended life: spot notices, resume at boot, the time limit, idle stop, the watchdog, notifications."""
