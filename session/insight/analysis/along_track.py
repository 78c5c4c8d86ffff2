"""Where on the track things happen: where the car leaves it, and what it earns and how fast it goes at each
waypoint (the questions deepracer-log-guru's exit points and reward-per-waypoint views, and the community
analysis notebooks' heatmaps, answer).

Positions are the steps' `closest_waypoint` (the simulator's index of the centre-line vertex nearest the car, in
driving order) and `x`, `y`. Only steps the reward function was called for count towards reward and speed: the
`prepare` step that opens every episode earns nothing by rule (FORMATS.md §1.1), so it would pull the
start's averages down.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd

from session.insight.analysis.episode_table import json_value

EXIT_STATUSES = ("off_track", "crashed")
SECTIONS = 20  # a lap is cut into this many equal runs of waypoints for counting


def exits(steps: pd.DataFrame, episodes: pd.DataFrame) -> pd.DataFrame:
    """One row per episode that ended off the track or crashed: `unique_episode`, `iteration`, `worker`,
    `status`, where (`x`, `y`, `closest_waypoint`) and how far it had come (`progress`), from its last step."""
    ended = episodes[episodes["status"].astype("string").isin(EXIT_STATUSES)]
    columns = ["unique_episode", "iteration", "worker", "status", "x", "y", "closest_waypoint", "progress"]
    if not len(ended):
        return pd.DataFrame({name: pd.Series(dtype="float64") for name in columns})
    last = steps.groupby("unique_episode", sort=False, observed=True).tail(1)
    last = last[last["unique_episode"].isin(ended["unique_episode"].to_numpy())]
    frame = last[["unique_episode", "iteration", "worker", "x", "y", "closest_waypoint", "progress"]].copy()
    frame["status"] = last["episode_status"].astype("string").to_numpy()
    return frame[columns].sort_values("unique_episode", kind="stable").reset_index(drop=True)


def sections(waypoints: int, count: int = SECTIONS) -> list[tuple[int, int]]:
    """`count` (or fewer, on a short track) runs of waypoints [first, last] covering 0 .. waypoints - 1."""
    count = max(1, min(count, waypoints))
    edges = [round(i * waypoints / count) for i in range(count + 1)]
    return [(edges[i], edges[i + 1] - 1) for i in range(count)]


def exits_by_section(exit_table: pd.DataFrame, waypoints: int, count: int = SECTIONS) -> list[dict[str, Any]]:
    """Exits counted per run of waypoints, in driving order: `first`, `last` waypoint, `exits`, `share` (0-1)."""
    total = len(exit_table)
    where = fold(exit_table["closest_waypoint"].to_numpy(dtype=np.int64) if total else np.zeros(0, np.int64),
                    waypoints)
    out = []
    for first, last in sections(waypoints, count):
        n = int(((where >= first) & (where <= last)).sum())
        out.append({"first": first, "last": last, "exits": n, "share": round(n / total, 6) if total else None})
    return out


def by_waypoint(steps: pd.DataFrame, waypoints: Optional[int] = None) -> pd.DataFrame:
    """Per waypoint (0 .. waypoints - 1; default: the highest seen + 1): `steps` counted there, `mean_reward`
    and `mean_speed` (commanded, m/s) of the steps the reward function saw, and where the car was on average
    when that waypoint was its nearest (`mean_x`, `mean_y`: a map that needs no route file, and agrees with the
    indices whatever the direction); NaN where no step was."""
    # A mask and the five columns it needs, not a filtered copy of the whole frame (160 MB at 1M steps).
    counted = rewarded(steps["episode_status"]) if len(steps) else np.zeros(0, bool)
    where = steps["closest_waypoint"].to_numpy(dtype=np.int64)[counted] if len(steps) else np.zeros(0, np.int64)
    size = waypoints if waypoints is not None else (int(where.max()) + 1 if len(where) else 0)
    where = fold(where, size)
    keep = (where >= 0) & (where < size)
    where = where[keep]
    count = np.bincount(where, minlength=size).astype(np.int64)

    def mean(name: str) -> np.ndarray:
        total = np.bincount(where, weights=steps[name].to_numpy(dtype=float)[counted][keep], minlength=size)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    return pd.DataFrame({"waypoint": np.arange(size), "steps": count, "mean_reward": mean("reward"),
                         "mean_speed": mean("speed"), "mean_x": mean("x"), "mean_y": mean("y")})


def rewarded(status: pd.Series) -> np.ndarray:
    """The steps that are not `prepare`. A step without a status is a 2019 line (15 fields, FORMATS.md §5.1): it
    counts, since nothing tells its episode's first step apart. A categorical compares its codes: text for each of
    a million steps took most of by_waypoint's time."""
    if isinstance(status.dtype, pd.CategoricalDtype):
        categories = status.cat.categories
        if "prepare" not in categories:
            return np.ones(len(status), bool)
        return status.cat.codes.to_numpy() != categories.get_loc("prepare")
    return (status.astype("string") != "prepare").to_numpy(dtype=bool, na_value=True)


def waypoint_count(track: Any, steps: pd.DataFrame) -> int:
    """The waypoints of the driven lap: the track view's without a loop's closing vertex (it repeats waypoint 0;
    simapp agent_ctrl/utils.py logs the nearer of the previous and next vertex, which can be that one), else the
    highest index seen + 1."""
    if track is not None:
        points = len(track.waypoints)
        return points - 1 if track.closed else points
    seen = steps["closest_waypoint"].to_numpy(dtype=np.int64) if len(steps) else np.zeros(0, np.int64)
    return int(seen.max()) + 1 if len(seen) else 0


def fold(where: np.ndarray, waypoints: int) -> np.ndarray:
    """A loop's closing vertex (index `waypoints`, where the simulator can say the car is nearest) is waypoint 0."""
    return np.where(where == waypoints, 0, where)


def as_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain values, NaN as None, for `report --json`."""
    out = []
    for row in table.to_dict("records"):
        out.append({key: json_value(value) for key, value in row.items()})
    return out
