"""Step timing per worker: does the simulation keep its 15 steps a second, in its own clock and in real time?

The simulator acts on camera frames: about 15 steps per simulated second (FORMATS.md §1.1; simapp's stuck
detection counts "15 steps = 1 s"). Two different things can go wrong, and the table tells them apart:

- **Dropped frames** (simulated time between two steps well over 1/15 s): the agent acted on an older frame
  than it should, or a frame was skipped, so the policy learns from observations further apart than it will get
  on the car. Measured in the simulator's clock (`tstamp`), which every log has. A step counts as late when its
  interval is over 1.5 frames (0.1 s); more than LATE_SHARE_LIMIT of them is flagged: the worker's CPU cannot
  keep the camera, the physics and the agent in step (too many workers for the vCPUs, a busy host).
- **Slower than real time** (a simulated second takes longer than a second): training is correct but slow, fewer
  episodes an hour. Measured with `wall_clock` (community simapp 6.x only): the real-time factor is simulated
  seconds per wall second; under REAL_TIME_LIMIT is flagged (a worker short of CPU: fewer episodes an hour,
  and dropped frames follow).

Intervals are taken between consecutive steps of one episode only (a reset between episodes is no step), per
(source, phase, stream, worker).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from session.insight.analysis.episode_table import json_value

TARGET_HZ = 15.0
FRAME_S = 1 / TARGET_HZ
LATE_S = 1.5 * FRAME_S  # a step whose interval is over 1.5 frames came at least one frame late
LATE_SHARE_LIMIT = 0.05  # flagged above 5% late steps (the real runs in the test data have 0-3.2%)
REAL_TIME_LIMIT = 0.6  # flagged under 0.6 simulated s per wall s (DRoA's own service ran at 0.72-0.74 here)

TIMING_COLUMNS = ("source", "phase", "stream", "worker", "intervals", "steps_per_sim_s", "mean_ms", "p95_ms",
                  "max_ms", "late_share", "steps_per_wall_s", "real_time_factor", "flags")
_GROUP = ("source", "phase", "stream", "worker")


def step_timing(steps: pd.DataFrame) -> pd.DataFrame:
    """One row per worker (of each source, phase and stream): `intervals` measured, `steps_per_sim_s`,
    `mean_ms`/`p95_ms`/`max_ms` of the simulated interval, `late_share` (0-1), `steps_per_wall_s` and
    `real_time_factor` (NaN without `wall_clock`), and `flags`: a tuple of "dropped frames" / "slower than real
    time"."""
    rows = []
    group = [name for name in _GROUP if name in steps]
    for key, part in steps.groupby(group, sort=True, observed=True) if len(steps) else ():
        rows.append({**dict(zip(group, key if isinstance(key, tuple) else (key,))), **_timing(part)})
    frame = pd.DataFrame(rows, columns=list(TIMING_COLUMNS))
    return frame.astype({"intervals": "int64", "worker": "int64"}) if len(frame) else frame


def as_json(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The table as plain values (NaN as None), for `report --json`."""
    out = []
    for row in table.to_dict("records"):
        out.append({key: (list(value) if key == "flags" else json_value(value)) for key, value in row.items()})
    return out


def _timing(part: pd.DataFrame) -> dict[str, Any]:
    order = np.lexsort((part["steps"].to_numpy(), part["unique_episode"].to_numpy()))
    episode = part["unique_episode"].to_numpy()[order]
    same = episode[1:] == episode[:-1]
    sim = np.diff(part["tstamp"].to_numpy(dtype=float)[order])[same]
    sim = sim[np.isfinite(sim) & (sim > 0)]
    if not len(sim):
        return {"intervals": 0, "steps_per_sim_s": np.nan, "mean_ms": np.nan, "p95_ms": np.nan, "max_ms": np.nan,
                "late_share": np.nan, "steps_per_wall_s": np.nan, "real_time_factor": np.nan, "flags": ()}
    wall_clock = part["wall_clock"].to_numpy(dtype=float, na_value=np.nan)[order] if "wall_clock" in part \
        else np.full(len(order), np.nan)
    wall = np.diff(wall_clock)[same]
    both = np.isfinite(wall) & (wall > 0)
    sim_all = np.diff(part["tstamp"].to_numpy(dtype=float)[order])[same]
    wall_s, sim_s = float(wall[both].sum()), float(sim_all[both].sum())
    late_share = float(np.mean(sim > LATE_S))
    real_time = sim_s / wall_s if wall_s > 0 else np.nan
    flags = []
    if late_share > LATE_SHARE_LIMIT:
        flags.append("dropped frames")
    if np.isfinite(real_time) and real_time < REAL_TIME_LIMIT:
        flags.append("slower than real time")
    return {
        "intervals": int(len(sim)),
        "steps_per_sim_s": float(1 / sim.mean()),
        "mean_ms": float(sim.mean() * 1000),
        "p95_ms": float(np.percentile(sim, 95) * 1000),
        "max_ms": float(sim.max() * 1000),
        "late_share": late_share,
        "steps_per_wall_s": float(both.sum() / wall_s) if wall_s > 0 else np.nan,
        "real_time_factor": real_time,
        "flags": tuple(flags),
    }
