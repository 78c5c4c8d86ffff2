"""The foundation every layer stands on: errors and exit codes, env files, the system and run settings, findings."""
