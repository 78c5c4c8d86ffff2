"""Sizing a training run across its workers: episodes per iteration, each worker's share and round-robin start,
and the steps an iteration collects against the trainer's step cap (issue 12).

How the simulator (deepracer-simapp 6.0.4, `bundle/markov/`) does it, which every rule here follows:

- Episodes. One iteration is `num_episodes_between_training` episodes (clipped_ppo; sagemaker_graph_manager.py
  sets `num_consecutive_playing_steps = EnvironmentEpisodes(num_episodes_between_training)`). Episode i is played
  by worker i mod N (deepracer_memory.py, `DeepRacerRolloutBackEnd.data_req_handler`): worker k (1-based) plays
  E // N episodes, one more when k <= E mod N (rollout_worker.py, `rollout_worker`: `act_steps`). The trainer asks
  for the episodes in order and waits for each (`DeepRacerTrainerBackEnd.fetch`).
- Idle workers. With fewer episodes than workers, rollout_worker.py `main` lowers NUM_WORKERS to the episodes and
  the workers beyond them log "Exiting excess worker..." and stop; their Gazebo keeps running and drives nothing.
  SAC has no episode count of its own: rl_coach's `AlgorithmParameters.num_consecutive_playing_steps` stays
  `EnvironmentSteps(1)`, so one episode per iteration and one working worker.
- Round robin. Every worker starts at START_POSITION_OFFSET and, after each training episode, moves its own
  start `ROUND_ROBIN_ADVANCE_DIST` of the lap further on (rollout_agent_ctrl.py `finish_episode`: `start_ndist =
  (start_ndist + round_robin_advance_dist) % 1.0`, with CHANGE_START_POSITION). Workers are not staggered, so they
  drive the same start positions. The evaluations between iterations (worker 1, DR_TRAIN_MIN_EVAL_TRIALS) start
  from worker 1's current start; DRfC (docs/multi_worker.md) asks for (episodes / workers) x distance = 1 so
  that this is the same place every iteration.
- Step cap. The trainer keeps at most MAX_MEMORY_STEPS steps per iteration (DR_TRAIN_MAX_STEPS_PER_ITERATION),
  else 10,000 for DEEP_CONVOLUTIONAL_NETWORK_SHALLOW and 3,000 for the deeper networks (deepracer_memory.py
  MAX_MEMORY_STEPS_SHALLOW / MAX_MEMORY_STEPS). Once the steps received pass it, the rest of the iteration's
  episodes are still simulated but thrown away (`fetch`). If the iteration's first episode alone passes it, the
  trainer gets no episode and exits: "No rollout data retrieved from the rollout worker" (training_worker.py).

Steps are estimated, not measured: a lap is the track's centre line length / the action space's speed x 15
steps per simulated second (FORMATS.md §1.1), and "every episode a lap" is the most an iteration reaches once
the car completes laps (early episodes end off track much sooner).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from session.core.config import RunConfig
from session.core.problems import Problem

STEPS_PER_SECOND = 15  # FORMATS.md §1.1: ~15 steps per simulated second
DEFAULT_EPISODES = 20  # sagemaker_graph_manager.py: hp_dict.get("num_episodes_between_training", 20)
SHALLOW_CAP = 10_000   # deepracer_memory.py MAX_MEMORY_STEPS_SHALLOW
DEEP_CAP = 3_000       # deepracer_memory.py MAX_MEMORY_STEPS (the deeper networks)
SIZING_GUIDE = 10_000  # "about 10,000 steps per iteration at most" (issue 12; DRfC docs/multi_worker.md)
SHALLOW = "DEEP_CONVOLUTIONAL_NETWORK_SHALLOW"
SPEED_RANGE = (0.1, 4.0)  # the simulator clamps speeds to this (custom_files.SPEED_RANGE)


@dataclass(frozen=True)
class WorkerShare:
    """What one worker (1-based) does in one iteration."""

    number: int
    episodes: int
    world_name: str
    advance: float        # DR_TRAIN_ROUND_ROBIN_ADVANCE_DIST of this worker
    change_start: bool    # DR_TRAIN_CHANGE_START_POSITION of this worker
    offset: float         # DR_TRAIN_START_POSITION_OFFSET of this worker

    @property
    def lap_moved(self) -> float:
        """How far (fraction of a lap) this worker's start moves in one iteration."""
        return self.episodes * self.advance if self.change_start else 0.0


@dataclass(frozen=True)
class Steps:
    """The estimate of an iteration's steps (None where the track or the action space is not known)."""

    cap: int
    cap_source: str
    mean_speed: Optional[float] = None
    top_speed: Optional[float] = None
    lap_steps: Mapping[int, int] = field(default_factory=dict)      # worker -> steps of a lap at mean speed
    fastest_lap_steps: Optional[int] = None                         # worker 1's lap at top speed
    per_iteration: Optional[int] = None                             # every episode a lap, at mean speed


@dataclass(frozen=True)
class Sizing:
    workers: int
    episodes: int                  # episodes per iteration as the simulator plays them
    algorithm: str
    shares: tuple[WorkerShare, ...]
    steps: Steps
    track_lengths: Mapping[str, float]
    problems: tuple[Problem, ...]

    @property
    def idle(self) -> int:
        return sum(1 for share in self.shares if share.episodes == 0)

    def lines(self) -> list[str]:
        """The plain explanation `validate` prints."""
        lines = [f"sizing: {self._episodes_line()}"]
        lines += [f"sizing: {line}" for line in self._round_robin_lines()]
        lines.append(f"sizing: {self._steps_line()}")
        return lines

    def _episodes_line(self) -> str:
        working = [s for s in self.shares if s.episodes]
        counts = sorted({s.episodes for s in working}, reverse=True)
        if self.algorithm == "sac":
            head = "sac plays 1 episode per iteration, so worker 1 plays it"
        elif len(counts) == 1 and self.idle == 0:
            head = (f"{self.workers} worker{'s' if self.workers > 1 else ''} x {counts[0]} episode"
                    f"{'s' if counts[0] > 1 else ''} = {self.episodes} episodes per iteration")
        else:
            parts = [f"worker{'s' if len(group) > 1 else ''} {_numbers(group)}: {n} episode{'s' if n != 1 else ''}"
                     for n in counts for group in [[s.number for s in working if s.episodes == n]]]
            head = f"{self.episodes} episodes per iteration over {self.workers} workers ({'; '.join(parts)})"
        if self.idle:
            idle = _numbers([s.number for s in self.shares if not s.episodes])
            head += f"; worker{'s' if self.idle > 1 else ''} {idle} would play none"
        return head

    def _round_robin_lines(self) -> list[str]:
        groups: dict[tuple, list[int]] = {}
        for share in self.shares:
            if share.episodes:
                groups.setdefault((share.change_start, share.advance, share.episodes, share.offset),
                                  []).append(share.number)
        lines = []
        for (change, advance, episodes, offset), numbers in groups.items():
            many = len(numbers) > 1
            who = "each worker" if many and len(numbers) == len(self.shares) else \
                f"worker{'s' if many else ''} {_numbers(numbers)}{' each' if many else ''}"
            if not change:
                lines.append(f"{who}: DR_TRAIN_CHANGE_START_POSITION=False: every episode starts at {_pct(offset)} "
                             f"of the lap")
                continue
            full = " (a full lap: the evaluations after each iteration start at the same place)" \
                if math.isclose(episodes * advance, 1.0) else ""
            lines.append(f"round-robin advance {advance:g}: {who} start{'' if many and who != 'each worker' else 's'} "
                         f"{_pct(advance)} of the lap further on after every training episode, so "
                         f"{episodes} episode{'s' if episodes != 1 else ''} per iteration move the start "
                         f"{_pct(episodes * advance)} of a lap{full}")
        starting = [s for s in self.shares if s.episodes and s.change_start]
        if len(starting) > 1 and len({s.offset for s in starting}) == 1:
            lines.append(f"all {len(starting)} workers begin at DR_TRAIN_START_POSITION_OFFSET {starting[0].offset:g} "
                         f"and the simulator does not stagger them, so they drive the same start positions")
        return lines

    def _steps_line(self) -> str:
        steps = self.steps
        cap = f"the trainer keeps at most {steps.cap:,} steps per iteration ({steps.cap_source})"
        if steps.per_iteration is None:
            return f"steps per iteration not estimated ({self._unknown()}); {cap}"
        track = self.shares[0].world_name
        one = steps.lap_steps.get(1)
        lap = (f"a lap of {track} ({self.track_lengths[track]:.1f} m) at the actions' mean speed "
               f"{steps.mean_speed:g} m/s is ~{one:,} steps" if one else "a lap")
        return (f"{lap} ({STEPS_PER_SECOND} steps per simulated second); once every episode completes a lap an "
                f"iteration is ~{steps.per_iteration:,} steps; {cap}")

    def _unknown(self) -> str:
        missing = [name for name in {s.world_name for s in self.shares if s.episodes} if name not in self.track_lengths]
        if self.steps.mean_speed is None:
            return "no readable action space in model_metadata.json"
        return f"no track file for {', '.join(sorted(missing))}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "workers": self.workers, "episodes_per_iteration": self.episodes, "algorithm": self.algorithm,
            "idle_workers": self.idle,
            "per_worker": [{"worker": s.number, "episodes": s.episodes, "world_name": s.world_name,
                            "round_robin_advance_dist": s.advance, "change_start_position": s.change_start,
                            "start_position_offset": s.offset, "lap_moved_per_iteration": round(s.lap_moved, 6),
                            "lap_steps": self.steps.lap_steps.get(s.number)} for s in self.shares],
            "steps": {"cap": self.steps.cap, "cap_source": self.steps.cap_source,
                      "mean_speed": self.steps.mean_speed, "top_speed": self.steps.top_speed,
                      "per_iteration_if_every_episode_is_a_lap": self.steps.per_iteration,
                      "fastest_lap_steps": self.steps.fastest_lap_steps,
                      "steps_per_second": STEPS_PER_SECOND},
            "explanation": self.lines(),
        }


def _numbers(numbers: Sequence[int]) -> str:
    numbers = sorted(numbers)
    if len(numbers) > 2 and numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{numbers[0]}-{numbers[-1]}"
    return ", ".join(str(n) for n in numbers)


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.4g}%"


# --- the pieces, each from the simulator's rule ----------------------------------------------------------------


def episodes_per_worker(episodes: int, workers: int) -> list[int]:
    """Worker k (1-based) plays E // N episodes, one more when k <= E mod N (rollout_worker.py `act_steps`);
    with E < N the workers beyond E play none."""
    if workers < 1 or episodes < 0:
        raise ValueError(f"need at least 1 worker and 0 episodes, got {workers} and {episodes}")
    return [episodes // workers + (1 if k < episodes % workers else 0) for k in range(workers)]


def step_cap(max_steps_per_iteration: Optional[int], network: Optional[str]) -> tuple[int, str]:
    """The trainer's cap on one iteration's steps and where it comes from (deepracer_memory.py)."""
    if max_steps_per_iteration:
        return max_steps_per_iteration, "DR_TRAIN_MAX_STEPS_PER_ITERATION"
    network = network or SHALLOW
    if network == SHALLOW:
        return SHALLOW_CAP, f"the simulator's default for {SHALLOW}; DR_TRAIN_MAX_STEPS_PER_ITERATION sets it"
    return DEEP_CAP, f"the simulator's default for {network}; DR_TRAIN_MAX_STEPS_PER_ITERATION sets it"


def action_speeds(metadata: Any) -> Optional[tuple[float, float]]:
    """(mean, top) speed in m/s the car drives with, clamped as the simulator clamps; None if not readable.
    Discrete: the mean and the largest of the actions' speeds; continuous: the middle and the top of the range."""
    if not isinstance(metadata, dict):
        return None
    space = metadata.get("action_space")
    low, high = SPEED_RANGE

    def clamp(value: Any) -> Optional[float]:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        return min(max(float(value), low), high)

    if isinstance(space, list):
        read = [clamp(a.get("speed")) if isinstance(a, dict) else None for a in space]
        speeds = [speed for speed in read if speed is not None]
        if not speeds or len(speeds) != len(read):
            return None
        return sum(speeds) / len(speeds), max(speeds)
    if isinstance(space, dict) and isinstance(space.get("speed"), dict):
        slow, fast = clamp(space["speed"].get("low")), clamp(space["speed"].get("high"))
        if slow is None or fast is None or slow > fast:
            return None
        return (slow + fast) / 2, fast
    return None


def lap_steps(length: float, speed: float) -> int:
    """Steps of one lap: length (m) / speed (m/s) x 15 steps per second, rounded."""
    return round(length / speed * STEPS_PER_SECOND)


def _episodes_setting(hyperparameters: Any) -> Optional[int]:
    if not isinstance(hyperparameters, dict):
        return DEFAULT_EPISODES if hyperparameters is None else None
    value = hyperparameters.get("num_episodes_between_training", DEFAULT_EPISODES)
    if isinstance(value, str):
        try:
            value = int(value)  # the trainer converts strings (custom_files warns about it)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    if not float(value).is_integer() or value < 1:
        return None  # custom_files reports it
    return int(value)


def _where(run: RunConfig, key: str) -> str:
    origin = run.origins.get(key)
    return f"{origin.path}:{origin.line}" if origin and origin.line else (origin.path if origin else "run.env")


# --- the whole ----------------------------------------------------------------------------------------------------


def size_run(run: RunConfig, workers: int, hyperparameters: Any, metadata: Any,
             track_lengths: Optional[Mapping[str, float]] = None, *, algorithm: str = "clipped_ppo",
             hyperparameters_file: str = "hyperparameters.json",
             metadata_file: str = "model_metadata.json") -> Optional[Sizing]:
    """The run's sizing and its findings; None when num_episodes_between_training is unusable (the file checks
    say why). `hyperparameters`/`metadata` are the parsed files (None: absent), `track_lengths` the centre-line
    length in metres of the worlds the workers drive."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    setting = _episodes_setting(hyperparameters)
    if setting is None:
        return None
    lengths = dict(track_lengths or {})
    episodes = 1 if algorithm == "sac" else setting
    counts = episodes_per_worker(episodes, workers)
    shares = []
    for number, count in enumerate(counts, start=1):
        config = run.for_worker(number)
        shares.append(WorkerShare(number, count, config.world_name, config.train_round_robin_advance_dist,
                                  config.train_change_start_position, config.train_start_position_offset))
    network = metadata.get("neural_network") if isinstance(metadata, dict) else None
    cap, cap_source = step_cap(run.train_max_steps_per_iteration, network if isinstance(network, str) else None)
    steps = _estimate(shares, lengths, action_speeds(metadata), cap, cap_source)
    sizing = Sizing(workers, episodes, algorithm, tuple(shares), steps, lengths, ())
    problems = _worker_problems(sizing, setting, hyperparameters_file, metadata_file)
    problems += _round_robin_problems(run, sizing)
    problems += _step_problems(run, sizing, hyperparameters_file)
    return Sizing(workers, episodes, algorithm, tuple(shares), steps, lengths, tuple(problems))


def _estimate(shares: Sequence[WorkerShare], lengths: Mapping[str, float], speeds: Optional[tuple[float, float]],
              cap: int, cap_source: str) -> Steps:
    if speeds is None:
        return Steps(cap, cap_source)
    mean, top = speeds
    laps = {s.number: lap_steps(lengths[s.world_name], mean) for s in shares if s.world_name in lengths}
    working = [s for s in shares if s.episodes]
    total = sum(s.episodes * laps[s.number] for s in working) if all(s.number in laps for s in working) else None
    first = shares[0].world_name
    fastest = lap_steps(lengths[first], top) if first in lengths else None
    return Steps(cap, cap_source, round(mean, 3), top, laps, fastest, total)


def _worker_problems(sizing: Sizing, setting: int, hyperparameters_file: str, metadata_file: str) -> list[Problem]:
    idle = [s.number for s in sizing.shares if not s.episodes]
    if sizing.algorithm == "sac" and idle:
        return [Problem(metadata_file, "training_algorithm", (
            f"sac plays one episode per iteration (rl_coach leaves SAC's num_consecutive_playing_steps at 1 "
            f"whatever num_episodes_between_training says), so the simulator keeps worker 1 and stops the others "
            f"(\"Exiting excess worker\"): worker{'s' if len(idle) > 1 else ''} {_numbers(idle)} would idle for the "
            f"whole run; train sac with 1 worker (--workers 1 or DR_WORKERS=1)"))]
    problems = []
    key = "num_episodes_between_training"
    if idle:
        suggestion = sizing.workers * max(1, -(-setting // sizing.workers))
        problems.append(Problem(hyperparameters_file, key, (
            f"is {setting}, fewer than the {sizing.workers} workers: the simulator gives each iteration's episodes "
            f"to the workers in turn and stops the workers without one (\"Exiting excess worker\"), so "
            f"worker{'s' if len(idle) > 1 else ''} {_numbers(idle)} would idle for the whole run; use at least "
            f"{sizing.workers} (e.g. {suggestion}) or {setting} worker{'s' if setting > 1 else ''}")))
    elif setting % sizing.workers:
        more = max(s.episodes for s in sizing.shares)
        ahead = [s.number for s in sizing.shares if s.episodes == more]
        problems.append(Problem(hyperparameters_file, key, (
            f"is {setting}, not a multiple of the {sizing.workers} workers: worker{'s' if len(ahead) > 1 else ''} "
            f"{_numbers(ahead)} play{'s' if len(ahead) == 1 else ''} {more} episodes, the others {more - 1}, and "
            f"the trainer waits for the slowest; use e.g. {setting - setting % sizing.workers + sizing.workers}"),
            "warning"))
    return problems


def _round_robin_problems(run: RunConfig, sizing: Sizing) -> list[Problem]:
    """One warning per distinct advance distance, judged with the episodes of the first worker using it (worker 1
    runs the evaluations, so its share decides where they start)."""
    first: dict[float, WorkerShare] = {}
    for share in sizing.shares:
        if share.episodes and share.change_start:
            first.setdefault(share.advance, share)
    problems = []
    for advance, share in first.items():
        if math.isclose(share.lap_moved, 1.0, rel_tol=1e-6):
            continue
        who = f"worker {share.number}" if sizing.workers > 1 else "the worker"
        evaluation = ", so the evaluations after each iteration start somewhere else each time" \
            if share.number == 1 and not share.lap_moved.is_integer() else ""
        problems.append(Problem(_where(run.for_worker(share.number), "DR_TRAIN_ROUND_ROBIN_ADVANCE_DIST"),
                                "DR_TRAIN_ROUND_ROBIN_ADVANCE_DIST", (
            f"{advance:g} with {share.episodes} episode{'s' if share.episodes != 1 else ''} per iteration moves the "
            f"start of {who} {_pct(share.lap_moved)} of a lap per iteration{evaluation}; DRfC recommends "
            f"(episodes / workers) x distance = 1, here a distance of {1 / share.episodes:g}"), "warning"))
    return problems


def _step_problems(run: RunConfig, sizing: Sizing, hyperparameters_file: str) -> list[Problem]:
    steps = sizing.steps
    problems = []
    where = (_where(run, "DR_TRAIN_MAX_STEPS_PER_ITERATION") if run.train_max_steps_per_iteration
             else hyperparameters_file)
    key = "DR_TRAIN_MAX_STEPS_PER_ITERATION" if run.train_max_steps_per_iteration else "num_episodes_between_training"
    if steps.fastest_lap_steps is not None and steps.fastest_lap_steps > steps.cap:
        track = sizing.shares[0].world_name
        problems.append(Problem(where, "DR_TRAIN_MAX_STEPS_PER_ITERATION", (
            f"the trainer keeps at most {steps.cap:,} steps per iteration ({steps.cap_source}), but a lap of {track} "
            f"({sizing.track_lengths[track]:.1f} m) takes ~{steps.fastest_lap_steps:,} steps even at the top speed "
            f"{steps.top_speed:g} m/s: once the iteration's first episode completes a lap it alone passes the cap, "
            f"the trainer gets no episode and exits (\"No rollout data retrieved from the rollout worker\"); set it "
            f"to at least {steps.fastest_lap_steps:,}, better {SHALLOW_CAP:,}")))
        return problems
    if steps.per_iteration is None:
        return problems
    kept = _episodes_kept(sizing)
    if steps.per_iteration > steps.cap:
        problems.append(Problem(where, key, (
            f"{sizing.episodes} episodes per iteration are ~{steps.per_iteration:,} steps once every episode "
            f"completes a lap (estimated: track length / mean action speed x {STEPS_PER_SECOND} steps per second), "
            f"over the {steps.cap:,} the trainer keeps ({steps.cap_source}): the last ~{sizing.episodes - kept} "
            f"episodes of an iteration are simulated and thrown away; about {max(kept, 1)} episodes fit"),
            "warning"))
    elif steps.per_iteration > SIZING_GUIDE:
        problems.append(Problem(where, key, (
            f"{sizing.episodes} episodes per iteration are ~{steps.per_iteration:,} steps once every episode "
            f"completes a lap, more than the ~{SIZING_GUIDE:,} DRfC sizes for (the simulator's authors measured "
            f"10,000 as what the trainer's memory holds for the shallow network): the raised cap lets the trainer "
            f"keep them all, so watch its memory"), "warning"))
    return problems


def _episodes_kept(sizing: Sizing) -> int:
    """How many episodes, taken in the trainer's order (episode i from worker i mod N), fit under the cap."""
    total, kept = 0, 0
    order = [s for s in sizing.shares if s.episodes]
    remaining = {s.number: s.episodes for s in order}
    while any(remaining.values()):
        for share in order:
            if not remaining[share.number]:
                continue
            remaining[share.number] -= 1
            total += sizing.steps.lap_steps[share.number]
            if total > sizing.steps.cap:
                return kept
            kept += 1
    return kept


__all__ = ["Sizing", "Steps", "WorkerShare", "action_speeds", "episodes_per_worker", "lap_steps", "size_run",
           "step_cap"]
