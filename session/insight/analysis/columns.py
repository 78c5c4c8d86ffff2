"""The columns of the per-step table: deepracer-utils' names, the simulator's names, and the layouts of a
SIM_TRACE_LOG line by its field count (FORMATS.md §5.1, §5.2, §7.1). One place for these facts.

deepracer-utils (1.5.x) renames the simtrace CSV's `X, Y, steer, throttle, all_wheels_on_track` to
`x, y, steering_angle, speed, on_track`, sets `action` to -1 for continuous action spaces (the chosen steering
and speed are the `steering_angle` and `speed` columns), and adds `iteration`, `worker` and `unique_episode`.
We keep its names and habits, and also keep `obstacle_crash_counter`, which it drops.
"""

from __future__ import annotations

import pyarrow as pa

# The simulator's field names in SIM_TRACE_LOG order (= simtrace CSV header names).
SIM_FIELDS = ("episode", "steps", "X", "Y", "yaw", "steer", "throttle", "action", "reward", "done",
              "all_wheels_on_track", "progress", "closest_waypoint", "track_len", "tstamp", "episode_status",
              "pause_duration", "obstacle_crash_counter", "wall_clock")

# A SIM_TRACE_LOG line has 15 fields (2019) up to 19 (community simapp 6.x); each version appended fields.
FIELD_COUNTS = range(15, 20)
LAYOUTS = {count: SIM_FIELDS[:count] for count in FIELD_COUNTS}

# Simulator (CSV header) name -> deepracer-utils name; names not listed are the same in both.
RENAMES = {"X": "x", "Y": "y", "steer": "steering_angle", "throttle": "speed", "all_wheels_on_track": "on_track"}
# Header names we accept for a column: the simulator's and deepracer-utils' (a CSV written from its frames).
ALIASES = {**{name: RENAMES.get(name, name) for name in SIM_FIELDS},
           **{name: name for name in RENAMES.values()}}

# How each field is parsed. Steps are read as floats: the CSV writes them as `2.0`.
FIELD_TYPES: dict[str, pa.DataType] = {
    "episode": pa.int64(), "steps": pa.float64(), "x": pa.float64(), "y": pa.float64(), "yaw": pa.float64(),
    "steering_angle": pa.float64(), "speed": pa.float64(), "action": pa.string(), "reward": pa.float64(),
    "done": pa.bool_(), "on_track": pa.bool_(), "progress": pa.float64(), "closest_waypoint": pa.int64(),
    "track_len": pa.float64(), "tstamp": pa.float64(), "episode_status": pa.dictionary(pa.int32(), pa.string()),
    "pause_duration": pa.float64(), "obstacle_crash_counter": pa.float64(), "wall_clock": pa.float64(),
}

# The per-step table, in order: the simulator's fields under deepracer-utils' names, then where each row came
# from. `iteration` and `worker` are -1 where nothing tells them; `phase` is "training" or "evaluation";
# `stream` names one evaluation run ("" for training); `source` is the source given to the loader.
STEP_COLUMNS = (*(RENAMES.get(name, name) for name in SIM_FIELDS),
                "iteration", "worker", "unique_episode", "phase", "stream", "source")

# Columns a row must have; the later fields are NaN when a version did not write them.
REQUIRED = tuple(RENAMES.get(name, name) for name in SIM_FIELDS[:15])
OPTIONAL_FLOATS = ("pause_duration", "obstacle_crash_counter", "wall_clock")
# The field whose value is text: rows with it are real status rows (missing only in 15-field lines).
STATUS = "episode_status"

TRAINING = "training"
EVALUATION = "evaluation"
UNKNOWN = -1
