"""Re-score a run: what would another reward function have given the steps the car really drove?

`report RUN --reward candidate.py` replays the run's logged steps through the candidate, in the same sandbox as
`validate`'s dry run (session.checks.reward: a separate Python process with a time limit, the module imported once
as the simulator does, each result through `float()`), with params rebuilt from each step and the run's route
file as the simulator builds them (session.checks.reward.step_params): position, heading, speed and steering,
progress and steps as logged, the geometry (distance from centre, closest waypoints, left of centre, track width)
worked out again. So a builder sees what a change would have rewarded, episode by episode and waypoint by
waypoint, beside what the run's own function gave, before spending GPU hours on it.

What cannot be rebuilt is said, not guessed: objects (the keys are empty, as in a time trial) and any global state
the candidate keeps between calls starts from the first step replayed. Steps are replayed whole episodes at a time;
above MAX_STEPS, episodes are taken evenly across the run and the result says how many.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from session.checks.reward import ParamCases, check_reward_source, dry_run, step_params
from session.core.errors import DeepracerError
from session.insight.analysis.along_track import fold, rewarded, waypoint_count
from session.insight.analysis.episode_table import json_value

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from session.checks.tracks import TrackView

MAX_STEPS = 100_000  # steps replayed at most (~0.45 ms a step: params built here, a deep copy and a call there)
CALL_BUDGET_S = 0.005  # a call may take 5 ms on average (validate warns above that), on top of BASE_TIMEOUT_S
BASE_TIMEOUT_S = 30.0
AGREEMENT = 0.9  # of the sampled steps whose logged waypoint our geometry puts beside the car, for a direction


class RescoreError(DeepracerError):
    """The candidate cannot be replayed (it fails, or the run's route is unknown): one line, exit 2."""


@dataclass(frozen=True)
class Rescore:
    reward_file: str
    steps: int                 # steps replayed
    episodes_replayed: int
    episodes_total: int
    episodes: "pd.DataFrame"   # unique_episode, iteration, worker, old, new (sums per episode)
    per_waypoint: "pd.DataFrame"  # waypoint, old, new (means per step)
    notes: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        per_iteration = self.episodes.groupby("iteration", sort=True)[["old", "new"]].mean()
        return {
            "reward_file": self.reward_file,
            "steps": self.steps,
            "episodes_replayed": self.episodes_replayed,
            "episodes_total": self.episodes_total,
            "correlation": json_value(_correlation(self.episodes["old"], self.episodes["new"])),
            "per_iteration": [{"iteration": int(i), "old": json_value(row.old), "new": json_value(row.new)}
                              for i, row in per_iteration.iterrows()],
            "per_waypoint": [{"waypoint": int(row.waypoint), "old": json_value(row.old), "new": json_value(row.new)}
                             for row in self.per_waypoint.itertuples()],
            "notes": list(self.notes),
        }


def rescore(steps: "pd.DataFrame", view: "TrackView", reward_file: Path, *, waypoints: int,
            max_steps: int = MAX_STEPS, python: Optional[str] = None) -> Rescore:
    """Replay `steps` (one phase of a run, in episode and step order) through `reward_file`'s reward_function on
    `view` (the run's route, in its driving direction; see driven_view)."""
    import pandas as pd

    name = Path(reward_file).name
    errors = [p for p in check_reward_source(Path(reward_file)) if p.is_error]
    if errors:
        raise RescoreError(f"--reward {reward_file}: {errors[0].message}")
    replayed, notes = _sample(steps, max_steps)
    rewarded_mask = rewarded(replayed["episode_status"])
    counted = replayed[rewarded_mask]
    cases = ParamCases(track=view.name, waypoints={"driven": view.waypoints}, cases=_cases(counted, view))
    timeout = BASE_TIMEOUT_S + CALL_BUDGET_S * len(cases)
    result = dry_run(Path(reward_file), cases, timeout=timeout, python=python, slow_call_ms=math.inf)
    failed = [p for p in result.problems if p.is_error]
    if failed:
        raise RescoreError(f"--reward {reward_file}: {failed[0].message}")
    new = np.zeros(len(replayed))
    new[rewarded_mask] = np.array([np.nan if v is None else v for v in result.values], float)
    table = pd.DataFrame({"unique_episode": replayed["unique_episode"].to_numpy(),
                          "iteration": replayed["iteration"].to_numpy(), "worker": replayed["worker"].to_numpy(),
                          "waypoint": fold(replayed["closest_waypoint"].to_numpy(np.int64), waypoints),
                          "old": replayed["reward"].to_numpy(float), "new": new,
                          "counted": rewarded_mask})
    episodes = table.groupby("unique_episode", sort=True).agg(iteration=("iteration", "first"),
                                                               worker=("worker", "first"), old=("old", "sum"),
                                                               new=("new", "sum")).reset_index()
    along = table[table["counted"]].groupby("waypoint", sort=True)[["old", "new"]].mean()
    along = along.reindex(range(waypoints)).rename_axis("waypoint").reset_index()
    return Rescore(reward_file=name, steps=int(len(counted)), episodes_replayed=int(len(episodes)),
                   episodes_total=int(steps["unique_episode"].nunique()), episodes=episodes, per_waypoint=along,
                   notes=tuple(notes))


def driven_view(track: Any, steps: "pd.DataFrame", sample: int = 500) -> "TrackView":
    """The route as the car drove it, forward or reversed: the direction whose (previous, next) waypoint pair
    holds the logged closest waypoint (simapp agent_ctrl/utils.py logs the nearer of the two) for at least
    AGREEMENT of the steps sampled. Neither is an error: another route, or one in another frame."""
    if not len(steps):
        raise RescoreError("--reward: the run has no steps to replay")
    picked = steps.iloc[np.linspace(0, len(steps) - 1, min(sample, len(steps))).astype(int)]
    points = list(zip(picked["x"].to_numpy(float), picked["y"].to_numpy(float)))
    logged = picked["closest_waypoint"].to_numpy(np.int64)
    shares = {}
    for reversed_ in (False, True):
        view = track.view(reversed=reversed_)
        size = len(view.waypoints) - 1 if view.closed else len(view.waypoints)
        hits = [fold(np.asarray(w), size) in fold(np.asarray(view.nearest(p).closest_waypoints), size)
                for p, w in zip(points, logged)]
        shares[reversed_] = (float(np.mean(hits)), view)
    share, view = max(shares.values(), key=lambda found: found[0])
    if share < AGREEMENT:
        raise RescoreError(f"--reward: the steps' closest waypoints do not match route {track.name} "
                           f"({share:.0%} agree); give the run's route with --track NAME|FILE.npy")
    return view


def _cases(steps: "pd.DataFrame", view: "TrackView") -> list[dict[str, Any]]:
    status = steps["episode_status"].astype("string").fillna("").to_numpy(dtype=object)
    columns = [steps[name].to_numpy() for name in ("x", "y", "yaw", "steps", "speed", "steering_angle", "progress",
                                                    "on_track")]
    cases = []
    for x, y, yaw, step, speed, steering, progress, on_track, state in zip(*columns, status):
        params = step_params(view, (float(x), float(y)), float(yaw), steps=float(step), speed=float(speed),
                             steering=float(steering), progress=float(progress), on_track=bool(on_track),
                             offtrack=state == "off_track", crashed=state == "crashed")
        params["_route"] = "driven"
        cases.append(params)
    return cases


def _sample(steps: "pd.DataFrame", max_steps: int) -> tuple["pd.DataFrame", list[str]]:
    """Whole episodes, evenly across the run, up to about max_steps steps."""
    if len(steps) <= max_steps:
        return steps, []
    episodes = steps["unique_episode"].unique()
    keep_count = max(1, int(len(episodes) * max_steps / len(steps)))
    keep = episodes[np.linspace(0, len(episodes) - 1, keep_count).astype(int)]
    chosen = steps[steps["unique_episode"].isin(keep)]
    return chosen, [f"re-scored {len(keep):,} of {len(episodes):,} episodes, evenly across the run "
                    f"({len(chosen):,} steps; at most about {max_steps:,})"]


def _correlation(a: "pd.Series", b: "pd.Series") -> float:
    if len(a) < 3 or float(np.std(a)) == 0 or float(np.nanstd(b)) == 0:
        return float("nan")
    return float(np.corrcoef(a.to_numpy(float), b.to_numpy(float))[0, 1])


def for_report(report: Any, reward_file: Path, *, python: Optional[str] = None) -> Rescore:
    """Re-score a built report's headline phase on its own route (a route of another name is not the run's)."""
    choice = report.track
    if choice.track is None or choice.track.name != choice.name:
        raise RescoreError(f"--reward: re-scoring needs the route file of {choice.name or 'the run'}'s track "
                           f"(its waypoints and borders); give it with --track NAME|FILE.npy or --tracks DIR")
    if not Path(reward_file).is_file():
        raise RescoreError(f"--reward {reward_file}: no such file (expected a Python file with reward_function)")
    steps = report.steps[report.steps["phase"] == report.phase]
    view = driven_view(choice.track, steps)
    return rescore(steps, view, Path(reward_file), waypoints=waypoint_count(view, steps), python=python)
