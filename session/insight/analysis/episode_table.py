"""Per-episode table from the per-step table, and the summary numbers a report prints.

The columns follow deepracer-utils' `AnalysisUtils.simulation_agg` where it has one (`steps`, `start_at`,
`progress`, `time`, `dist`, `reward`, `speed`, `complete`, `time_if_complete`, `reward_if_complete`, `crashed`,
`off_track`) with its definitions: `steps` is the last minus the first step number plus one, `time` and `dist`
add up the time and distance between consecutive steps except into a `prepare` step (so the laps of a
continuous-lap evaluation, which have none, start at the previous lap's finish), `speed` is the mean of the
commanded speed, `progress` the highest progress. Added here: `complete` as a bool (progress reached 100),
`lap_time` (= `time` of a completed lap, else NaN), `status` (the last step's episode_status), `start_time` /
`end_time` (simulation seconds of the first and last step), `start_wall_clock` / `end_wall_clock` (epoch seconds,
NaN before simapp 6), `actual_speed` (dist / time, m/s), and where the episode came from (`source`, `phase`,
`stream`, `worker`, `iteration`, `episode`, `unique_episode`).

Done with numpy over the steps in episode order (one pass per column, no per-group Python), so it takes about
as long as one pandas groupby column on the same rows.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import pandas as pd

EPISODE_COLUMNS = ("source", "phase", "stream", "worker", "iteration", "episode", "unique_episode", "steps",
                   "start_at", "progress", "time", "dist", "reward", "speed", "complete", "lap_time", "status",
                   "start_time", "end_time", "start_wall_clock", "end_wall_clock", "crashed", "off_track",
                   "time_if_complete", "reward_if_complete", "actual_speed")

_PLACE = ("source", "phase", "stream", "worker", "iteration", "episode", "unique_episode")


def episodes(steps: pd.DataFrame) -> pd.DataFrame:
    """One row per episode of a per-step table (ours; a deepracer-utils frame works too). Episodes are told
    apart by `unique_episode` when there is one, else by (stream, worker, episode)."""
    if steps.empty:
        return pd.DataFrame({name: pd.Series(dtype=_EMPTY_TYPES.get(name, "float64")) for name in EPISODE_COLUMNS})
    steps = _episode_order(steps)
    key = _episode_key(steps)
    n = len(steps)
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    last = np.r_[first[1:] - 1, n - 1]
    count = last - first + 1

    status = steps["episode_status"]
    status_text = status.astype("string").fillna("").to_numpy(dtype=object) \
        if not isinstance(status.dtype, pd.CategoricalDtype) else None
    prepare = _is(status, "prepare", status_text)

    tstamp = steps["tstamp"].to_numpy(dtype=float)
    x, y = steps["x"].to_numpy(dtype=float), steps["y"].to_numpy(dtype=float)
    step_time = np.r_[0.0, np.diff(tstamp)]
    step_dist = np.r_[0.0, np.hypot(np.diff(x), np.diff(y))]
    fresh = prepare.copy()  # steps that count no time or distance from the step before
    fresh[first[~_continued(steps, first, prepare)]] = True
    step_time[fresh] = 0.0
    step_dist[fresh] = 0.0

    step_numbers = steps["steps"].to_numpy()
    progress = np.maximum.reduceat(steps["progress"].to_numpy(dtype=float), first)
    time = np.add.reduceat(step_time, first)
    dist = np.add.reduceat(step_dist, first)
    reward = np.add.reduceat(steps["reward"].to_numpy(dtype=float), first)
    complete = progress >= 100.0
    with np.errstate(divide="ignore", invalid="ignore"):
        result: dict[str, Any] = {
            "steps": np.maximum.reduceat(step_numbers, first) - np.minimum.reduceat(step_numbers, first) + 1,
            "start_at": steps["closest_waypoint"].to_numpy()[first],
            "progress": progress,
            "time": time,
            "dist": dist,
            "reward": reward,
            "speed": np.add.reduceat(steps["speed"].to_numpy(dtype=float), first) / count,
            "complete": complete,
            "lap_time": np.where(complete, time, np.nan),
            "status": status.iloc[last].to_numpy(),
            "start_time": tstamp[first],
            "end_time": tstamp[last],
            "start_wall_clock": _floats(steps, "wall_clock")[first],
            "end_wall_clock": _floats(steps, "wall_clock")[last],
            "crashed": np.add.reduceat(_is(status, "crashed", status_text).astype(np.int64), first),
            "off_track": np.add.reduceat(_is(status, "off_track", status_text).astype(np.int64), first),
            "time_if_complete": time * 100 / progress,
            "reward_if_complete": reward * 100 / progress,
            "actual_speed": np.where(time > 0, dist / np.where(time > 0, time, 1), np.nan),
        }
    place = {name: steps[name].iloc[first].to_numpy() for name in _PLACE if name in steps}
    frame = pd.DataFrame({**place, **result})
    for name in ("source", "phase", "stream"):
        if name in frame and name in steps and isinstance(steps[name].dtype, pd.CategoricalDtype):
            frame[name] = pd.Categorical(frame[name], categories=steps[name].cat.categories)
    if isinstance(status.dtype, pd.CategoricalDtype):
        frame["status"] = pd.Categorical(frame["status"], categories=status.cat.categories)
    return frame[[name for name in EPISODE_COLUMNS if name in frame]]


def summary(episodes_table: pd.DataFrame) -> dict[str, Any]:
    """The numbers of `report --json`: `episodes`, `completed_laps`, `best_lap_s`, `mean_progress`, and the same
    per iteration (`iterations`, with `completion_rate` and `mean_reward`) and per worker (`workers`).
    Values are plain Python numbers; `best_lap_s` is None without a completed lap. Means are exact sums
    (`math.fsum`) over the count, so they do not depend on the order of the rows: a run's files given one by one
    or as a folder give the same numbers to the last digit."""
    columns = {name: episodes_table[name].to_numpy(dtype=float, na_value=np.nan)
               for name in ("complete", "lap_time", "progress", "reward", "steps")}
    out = _numbers(columns, slice(None))
    out["iterations"] = _numbers_by(episodes_table, "iteration", columns)
    out["workers"] = _numbers_by(episodes_table, "worker", columns)
    return out


def _numbers_by(table: pd.DataFrame, key: str, columns: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """`_numbers` of each value of `key`, in its order: one sort for all of them, not a pandas group each (a run
    has hundreds of iterations; a groupby of sub-frames cost more than the rest of the report's numbers)."""
    values = table[key].to_numpy()
    order = np.argsort(values, kind="stable")
    keys = values[order]
    starts = np.r_[0, np.flatnonzero(keys[1:] != keys[:-1]) + 1] if len(keys) else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], len(keys)]
    ordered = {name: column[order] for name, column in columns.items()}
    return [{key: int(keys[start]), **_numbers(ordered, slice(start, end))} for start, end in zip(starts, ends)]


def _numbers(columns: dict[str, np.ndarray], rows: slice) -> dict[str, Any]:
    complete = columns["complete"][rows]
    count = len(complete)
    laps = columns["lap_time"][rows]
    laps = laps[~np.isnan(laps)]
    return {
        "episodes": count,
        "completed_laps": int(complete.sum()),
        "completion_rate": _mean(complete),
        "best_lap_s": _number(laps.min()) if len(laps) else None,
        "mean_lap_s": _mean(laps),
        "mean_progress": _mean(columns["progress"][rows]),
        "mean_reward": _mean(columns["reward"][rows]),
        "steps": int(columns["steps"][rows].sum()),
    }


def _mean(values: np.ndarray) -> Optional[float]:
    """The mean of the numbers that are not NaN (None without any), from their exact sum."""
    values = values[~np.isnan(values)]
    return _number(math.fsum(values.tolist()) / len(values)) if len(values) else None


def json_value(value: Any) -> Any:
    """A table's cell as plain JSON: numpy scalars as Python ones, floats to six decimals, NaN and inf as None."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else round(float(value), 6)
    return value


def _number(value: Any) -> Optional[float]:
    value = float(value)
    return None if math.isnan(value) else round(value, 6)


_EMPTY_TYPES = {"source": "category", "phase": "category", "stream": "category", "status": "category",
                "worker": "int64", "iteration": "int64", "episode": "int64", "unique_episode": "int64",
                "steps": "int64", "start_at": "int64", "complete": "bool", "crashed": "int64", "off_track": "int64"}


def _episode_key(steps: pd.DataFrame) -> np.ndarray:
    if "unique_episode" in steps:
        return steps["unique_episode"].to_numpy()
    parts = [steps[name] for name in ("stream", "worker", "episode") if name in steps]
    return pd.MultiIndex.from_arrays(parts).factorize()[0] if len(parts) > 1 else parts[0].to_numpy()


def _episode_order(steps: pd.DataFrame) -> pd.DataFrame:
    """The steps grouped by episode in step order (our loader's frames already are)."""
    key = _episode_key(steps)
    step_numbers = steps["steps"].to_numpy()
    if len(key) < 2:
        return steps
    key_step = np.diff(key)
    if np.all((key_step > 0) | ((key_step == 0) & (np.diff(step_numbers) >= 0))):
        return steps
    order = np.lexsort((step_numbers, key))
    return steps.iloc[order]


def _continued(steps: pd.DataFrame, first: np.ndarray, prepare: np.ndarray) -> np.ndarray:
    """Per episode: whether it goes on from the step before it, as the laps of a continuous-lap evaluation do
    (the next episode number, a status that is not `prepare`, same run and worker): its time then starts at the
    last lap's finish, as in deepracer-utils."""
    previous = first[1:] - 1
    same = ~prepare[first[1:]] & steps["episode_status"].notna().to_numpy()[first[1:]]  # 15 fields: no status
    episode = steps["episode"].to_numpy()
    same &= episode[first[1:]] == episode[previous] + 1
    for name in ("source", "phase", "stream", "worker"):
        if name in steps:
            column = steps[name]
            values = column.cat.codes.to_numpy() if isinstance(column.dtype, pd.CategoricalDtype) \
                else column.to_numpy()
            same &= values[first[1:]] == values[previous]
    return np.r_[False, same]


def _is(status: pd.Series, value: str, text: Optional[np.ndarray]) -> np.ndarray:
    if text is None:
        categories = status.cat.categories
        if value not in categories:
            return np.zeros(len(status), bool)
        return status.cat.codes.to_numpy() == categories.get_loc(value)
    return text == value


def _floats(steps: pd.DataFrame, name: str) -> np.ndarray:
    if name not in steps:
        return np.full(len(steps), np.nan)
    return steps[name].to_numpy(dtype=float, na_value=np.nan)
