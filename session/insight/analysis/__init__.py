"""Analysis data: the steps the simulator traced and the episodes they form, as pandas DataFrames with
deepracer-utils' column names, so its notebooks' habits carry over (`df[df.episode_status == "lap_complete"]`,
`df.groupby("unique_episode")`, ...).

    from session.insight.analysis import load, episodes, summary
    trace = load(["model-logs.tar.gz", "~/models/my-model", from_storage(storage, "my-model")])
    trace.steps            # one row per step: episode, steps, x, y, yaw, steering_angle, speed, action,
                           # reward, done, on_track, progress, closest_waypoint, track_len, tstamp,
                           # episode_status, pause_duration, obstacle_crash_counter, wall_clock,
                           # iteration, worker, unique_episode, phase, stream, source
    table = episodes(trace.steps)   # one row per episode (see session.insight.analysis.episode_table)
    summary(table[table.phase == "training"])  # episodes, completed_laps, best_lap_s, mean_progress, ...
    trace.problems.summary()        # "2 lines skipped (...)"; trace.problems.examples: file, line, reason

Reads simtrace CSVs (any header variant), SIM_TRACE_LOG lines of simulation/robomaker logs (15 to 19 fields,
with or without ROS 2's `[node] [agent]` tags), console/DRoA log tarballs (in memory), local model folders and
a model prefix in the bucket. Parsing is columnar (pyarrow's CSV reader on all lines at once); see
`benchmarks/loader_speed.py` for how it compares with deepracer-utils. For a log that is still being written
(a container's log stream), `TraceTail` turns appended bytes into new steps.

The modules: columns (names and layouts), parse (bytes -> Arrow), sources (files, archives, bucket and what
their paths say), loader (the per-step table), episode_table (per-episode table, summary), tail (a growing log),
problems (what was skipped). Importing the package imports pandas and pyarrow (~0.6 s): commands import it
inside the function that needs it.
"""

from session.insight.analysis.columns import EVALUATION, STEP_COLUMNS, TRAINING
from session.insight.analysis.episode_table import EPISODE_COLUMNS, episodes, summary
from session.insight.analysis.loader import Trace, load
from session.insight.analysis.problems import LoadProblems
from session.insight.analysis.sources import AnalysisError, StoragePrefix, from_storage
from session.insight.analysis.tail import TraceTail

__all__ = ["AnalysisError", "EPISODE_COLUMNS", "EVALUATION", "LoadProblems", "STEP_COLUMNS", "StoragePrefix",
           "TRAINING", "Trace", "TraceTail", "episodes", "from_storage", "load", "summary"]
