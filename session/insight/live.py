"""The live view's reading of a training session: log-line parsers, a `LiveState` fed line by line, and the
stall rules. Pure: no Docker, no storage, no clock of its own (every line comes with the time it was seen), so
the tests feed it the real simulator logs.

What the logs say (FORMATS.md §5.1, §5.5, and the simapp's rollout worker):

- The trainer (SageMaker sibling, or the rl_coach container relaying it) prints one `Training> ... Episode=<n>,
  Total reward=<r>, Steps=<s>, Training iteration=<i>` per episode it receives, `Policy training> Surrogate
  loss=..., KL divergence=..., Entropy=..., training epoch=<k>` per epoch of a PPO update, `Checkpoint> Saving
  in path=[...<n>_Step-<s>.ckpt]` per checkpoint and `Best checkpoint number: <b>, Last checkpoint number: <l>`.
  Its first checkpoint (`0_Step-0`, or `<n>_Step-0` when it starts from a pretrained model) is played by the
  run's iteration 0; checkpoint n by iteration n - first. Iterations here are numbered that way, like the
  trainer's PPO `Training iteration` and `session.run.progress`.
- A worker prints a `SIM_TRACE_LOG:` line per simulation step of a training episode (`done` True on the last;
  19 fields with `wall_clock` in community 6.x images), `Checkpoint> Restoring from path=...<n>_Step-<s>.ckpt`
  when it loads checkpoint n and plays the next episodes with it. Worker 1 (the simapp's rollout 0) then
  evaluates: `## agent: Starting evaluation phase` ... `Testing> ...` per evaluation episode (no SIM_TRACE
  lines), MIN_EVAL_TRIALS of them, then, while the trainer's next checkpoint is not there,
  `Additional evaluation. New Checkpoint: <seen>, Last Checkpoint: <L>` and one more evaluation episode, again
  and again; the other workers sleep silently meanwhile. After loading the next checkpoint it reports the
  evaluation: `[BestModelSelection] Evaluation episode progress mean: <m>` (of the checkpoint it played
  before) and `Updating the best checkpoint to "<n>_Step-<s>.ckpt"`.
- A fatal error is one `{"simapp_exception": {...}}` JSON line (session.engine.containers.parse_simapp_exception).

Stall rules (`find_stalls`, thresholds in `StallRules`):

- checkpoint: the trainer runs and has saved no checkpoint for `checkpoint_minutes` (since its newest
  `Checkpoint> Saving`, else since it started).
- worker: a running worker has printed no SIM_TRACE line for `worker_minutes` (while it evaluates, no line at
  all: evaluation episodes print none). Cause from its newest line: mid-episode means the simulator hung;
  at an episode's end it waits for a checkpoint, and then either the trainer has saved one the worker does not
  load (storage) or the trainer has not saved it (cause from the trainer's state).
- evaluation loop: a worker has printed at least `evaluation_loop` `Additional evaluation` lines since it
  last loaded a checkpoint, i.e. it keeps evaluating checkpoint L while waiting for L + 1, and either the
  trainer has not saved L + 1 (cause from the trainer's and other workers' state) or it has, and the worker
  does not see it (storage).
- exception: a simapp_exception in any log. exited: a container of the run exited with a non-zero code, or a
  worker ended while the trainer still runs.

Times are Unix seconds. A line's time is its `wall_clock` when it has one, else the time it was seen; lines
replayed from a container's start are "seen" when the view starts, so ages measured from them are lower
bounds (never false alarms). Steps per second are the SIM_TRACE lines of the newest minute of line times; from
arrival times, only those after the worker's log first paused for a second (the replay streams without one).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Deque, Dict, Optional, Sequence, Tuple, Union

from session.core.defaults import STALL_CHECKPOINT_MINUTES, STALL_EVALUATION_LOOP, STALL_WORKER_MINUTES
from session.engine.containers import SimappException, parse_simapp_exception
from session.insight.causes import Symptom, symptom_of, worth_reporting

if TYPE_CHECKING:  # pragma: no cover
    from session.engine.containers import ContainerInfo
    from session.run.progress import TrainingProgress

RATE_WINDOW_S = 60.0  # steps/s is measured over the newest minute of a worker's lines
_RATE_MIN_SPAN_S = 2.0  # fewer seconds than this between a window's ends: no rate yet
_CAUGHT_UP_GAP_S = 1.0  # without wall_clock: a worker's log has caught up at its first pause this long
_IDLE_S = 15.0  # a worker whose last episode ended this long ago is shown waiting
_LOAD_GRACE_S = 60.0  # a worker gets this long to load a checkpoint the trainer saved
_RUNNING = ("running", "paused", "restarting")
_ENDED = ("exited", "dead")
_LAP_COMPLETE = "lap_complete"

_SIM_TRACE = "SIM_TRACE_LOG:"
_MARKERS = (_SIM_TRACE, "Training>", "Policy training>", "Testing>", "Checkpoint>", "[BestModelSelection]")
_SAVED = re.compile(r"Checkpoint> Saving in path=.*?(\d+)_Step-(\d+)\.ckpt")
_RESTORED = re.compile(r"Checkpoint> Restoring from path=.*?(\d+)_Step-(\d+)\.ckpt")
_BEST_REPORT = re.compile(r"Best checkpoint number: (-?\d+), Last checkpoint number: (-?\d+)")
_ADDITIONAL = re.compile(r"Additional evaluation\. New Checkpoint: (-?\d+), Last Checkpoint: (-?\d+)")
_EVAL_MEAN = re.compile(r"\[BestModelSelection\] Evaluation episode (\w+) mean: (\S+)")
_BEST_CHOSEN = re.compile(r"\[BestModelSelection\] Updating the best checkpoint to \"(\d+)_Step-(\d+)\.ckpt\"")


# --- events: what one line says ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimStep:
    """One SIM_TRACE_LOG line (15-19 fields)."""

    episode: int
    step: int
    reward: float
    done: bool
    progress: float  # percent of a lap since the episode started
    status: str  # episode_status; "" in 15-field logs
    tstamp: float  # simulation seconds
    wall_clock: Optional[float]  # Unix seconds, 19-field logs only

    @property
    def lap_complete(self) -> bool:
        return self.status == _LAP_COMPLETE or (not self.status and self.done and self.progress >= 100.0)


@dataclass(frozen=True)
class EpisodeReport:
    """`Training> Name=..., Worker=<w>, Episode=<n>, Total reward=<r>, Steps=<s>, Training iteration=<i>`."""

    episode: int
    total_reward: float
    steps: int  # cumulative
    iteration: int  # as printed (PPO: the iteration; SAC: trained steps)
    worker: int


@dataclass(frozen=True)
class PolicyUpdate:
    """`Policy training> Surrogate loss=..., KL divergence=..., Entropy=..., training epoch=<k>, learning_rate=...`."""

    surrogate_loss: float
    kl_divergence: float
    entropy: float
    epoch: int
    learning_rate: Optional[float] = None


@dataclass(frozen=True)
class CheckpointSaved:
    number: int
    steps: int


@dataclass(frozen=True)
class CheckpointRestored:
    number: int
    steps: int


@dataclass(frozen=True)
class BestCheckpointReport:
    """The trainer's `Best checkpoint number: <b>, Last checkpoint number: <l>` (-1: none yet)."""

    best: int
    last: int


@dataclass(frozen=True)
class AdditionalEvaluation:
    """`Additional evaluation. New Checkpoint: <seen>, Last Checkpoint: <last>`: worker 1 waits for last + 1."""

    seen: int
    last: int


@dataclass(frozen=True)
class EvaluationStarted:
    pass


@dataclass(frozen=True)
class EvaluationEnded:
    """A `Testing>` line: one evaluation episode finished."""

    total_reward: Optional[float]


@dataclass(frozen=True)
class EvaluationMean:
    """`[BestModelSelection] Evaluation episode <metric> mean: <value>` for the checkpoint played before the one
    just loaded; value None when nothing was evaluated."""

    metric: str
    value: Optional[float]


@dataclass(frozen=True)
class BestCheckpointChosen:
    number: int
    steps: int


@dataclass(frozen=True)
class Malformed:
    """A line that names a known pattern but does not hold it whole (cut off, garbled)."""

    kind: str
    line: str


Event = Union[SimStep, EpisodeReport, PolicyUpdate, CheckpointSaved, CheckpointRestored, BestCheckpointReport,
              AdditionalEvaluation, EvaluationStarted, EvaluationEnded, EvaluationMean, BestCheckpointChosen,
              SimappException, Malformed]


def parse_sim_trace(line: str) -> Optional[SimStep]:
    """The SIM_TRACE_LOG step in a line, None when the line holds none. Raises ValueError when it holds a
    broken one. ROS 2 launch tags may precede it; a tab ends it."""
    start = line.find(_SIM_TRACE)
    if start < 0:
        return None
    body = line[start + len(_SIM_TRACE):]
    tab = body.find("\t")
    body = (body[:tab] if tab >= 0 else body).strip()
    opening = body.find("[")
    if opening >= 0 and "," in body[opening:body.find("]", opening)]:  # a continuous action written with commas
        body = re.sub(r"\[[^\]]*\]", lambda m: m.group(0).replace(",", " "), body)
    fields = body.split(",")
    if not 15 <= len(fields) <= 19:
        raise ValueError(f"{len(fields)} fields, expected 15 to 19")
    done = fields[9].strip()
    if done not in ("True", "False"):
        raise ValueError(f"done is {done!r}")
    return SimStep(episode=int(fields[0]), step=int(float(fields[1])), reward=float(fields[8]), done=done == "True",
                   progress=float(fields[11]), tstamp=float(fields[14]),
                   status=fields[15].strip() if len(fields) >= 16 else "",
                   wall_clock=float(fields[18]) if len(fields) == 19 else None)


def parse_line(line: str) -> Optional[Event]:
    """What one log line of the trainer or a worker says, or None when it says nothing the view uses."""
    try:
        return _parse(line)
    except (ValueError, KeyError) as error:
        kind = next((marker for marker in _MARKERS if marker in line), "line")
        return Malformed(kind=kind, line=f"{line.strip()[:200]} ({type(error).__name__}: {error})")


def _parse(line: str) -> Optional[Event]:
    if _SIM_TRACE in line:
        return parse_sim_trace(line)
    if "Training>" in line:
        values = _key_values(line, "Training>")
        return EpisodeReport(episode=int(values["Episode"]), total_reward=float(values["Total reward"]),
                             steps=int(values["Steps"]), iteration=int(values["Training iteration"]),
                             worker=int(values.get("Worker", "0")))
    if "Policy training>" in line:
        values = _key_values(line, "Policy training>")
        rate = values.get("learning_rate")
        return PolicyUpdate(surrogate_loss=float(values["Surrogate loss"]),
                            kl_divergence=float(values["KL divergence"]), entropy=float(values["Entropy"]),
                            epoch=int(values["training epoch"]), learning_rate=float(rate) if rate else None)
    if "Checkpoint>" in line:
        match = _SAVED.search(line)
        if match:
            return CheckpointSaved(int(match[1]), int(match[2]))
        match = _RESTORED.search(line)
        return CheckpointRestored(int(match[1]), int(match[2])) if match else None
    if "Best checkpoint number" in line:
        match = _BEST_REPORT.search(line)
        return BestCheckpointReport(int(match[1]), int(match[2])) if match else None
    if "Additional evaluation" in line:
        match = _ADDITIONAL.search(line)
        return AdditionalEvaluation(int(match[1]), int(match[2])) if match else None
    if "Starting evaluation phase" in line:
        return EvaluationStarted()
    if "Testing>" in line:
        reward = _key_values(line, "Testing>").get("Total reward")
        return EvaluationEnded(float(reward) if reward else None)
    if "[BestModelSelection]" in line:
        match = _EVAL_MEAN.search(line)
        if match:
            return EvaluationMean(match[1], None if match[2] == "None" else float(match[2]))
        match = _BEST_CHOSEN.search(line)
        return BestCheckpointChosen(int(match[1]), int(match[2])) if match else None
    if "simapp_exception" in line:
        return parse_simapp_exception(line)
    return None


def _key_values(line: str, marker: str) -> Dict[str, str]:
    """rl_coach's `<Prefix>> k=v, k=v` with colours off."""
    text = line[line.index(marker) + len(marker):]
    values = {}
    for part in text.split(", "):
        key, separator, value = part.partition("=")
        if separator:
            values[key.strip()] = value.strip()
    return values


# --- what the view shows -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuUse:
    index: int
    utilization_pct: float
    memory_used_mib: float
    memory_total_mib: float


@dataclass(frozen=True)
class DiskUse:
    path: str
    total_bytes: int
    used_bytes: int
    free_bytes: int

    @property
    def used_pct(self) -> float:
        return 100.0 * self.used_bytes / self.total_bytes if self.total_bytes else 0.0


@dataclass(frozen=True)
class TrainerView:
    """The trainer as its log and container tell. `iteration` counts checkpoints saved since its first."""

    state: Optional[str] = None  # container status; None when no container is known
    exit_code: Optional[int] = None
    started_at: Optional[float] = None
    iteration: Optional[int] = None
    checkpoint: Optional[int] = None  # the newest saved
    checkpoint_steps: Optional[int] = None
    checkpoint_at: Optional[float] = None
    checkpoints_saved: int = 0
    episodes: int = 0  # episodes received
    episodes_since_checkpoint: int = 0
    steps: Optional[int] = None  # cumulative, as the newest Training> line says
    printed_iteration: Optional[int] = None
    policy: Optional[PolicyUpdate] = None  # the newest Policy training> line
    policy_at: Optional[float] = None
    updating_policy: bool = False  # policy training lines after the newest checkpoint: training now
    best_reported: Optional[int] = None  # Best checkpoint number (deepracer_checkpoints.json as it read it)
    first_line_at: Optional[float] = None
    last_line_at: Optional[float] = None
    exception: Optional[SimappException] = None
    malformed: int = 0
    symptom: Optional[Symptom] = None  # the newest failure its log named (session.insight.causes)

    @property
    def active(self) -> bool:
        """Running, or (no container known) heard from."""
        return self.state in _RUNNING if self.state is not None else self.last_line_at is not None


@dataclass(frozen=True)
class WorkerView:
    """One simulation worker (1-based, like the containers' deepracer.worker label)."""

    number: int
    state: Optional[str] = None
    exit_code: Optional[int] = None
    started_at: Optional[float] = None
    episodes: int = 0  # training episodes finished
    eval_episodes: int = 0
    laps: int = 0
    steps: int = 0  # SIM_TRACE lines
    episode: Optional[int] = None  # the newest step's
    step: Optional[int] = None
    progress: Optional[float] = None
    mid_episode: bool = False  # the newest SIM_TRACE line did not end its episode
    phase: str = "starting"  # starting | driving | waiting | evaluating
    steps_per_s: Optional[float] = None
    last_step_at: Optional[float] = None
    last_line_at: Optional[float] = None
    checkpoint: Optional[int] = None  # the newest loaded
    evaluations: int = 0  # evaluation episodes started since it loaded that checkpoint
    additional_evaluations: int = 0  # of which `Additional evaluation`s
    awaited_checkpoint: Optional[int] = None  # Last Checkpoint + 1 of its newest Additional evaluation line
    seen_checkpoint: Optional[int] = None  # New Checkpoint of that line
    exception: Optional[SimappException] = None
    malformed: int = 0
    symptom: Optional[Symptom] = None  # the newest failure its log named (session.insight.causes)

    @property
    def active(self) -> bool:
        return self.state in _RUNNING if self.state is not None else self.last_line_at is not None

    @property
    def name(self) -> str:
        return f"worker {self.number}"


@dataclass(frozen=True)
class IterationRow:
    """The episodes played with one checkpoint: `number` counts from the run's first checkpoint."""

    number: int
    checkpoint: int
    episodes: int = 0
    mean_reward: Optional[float] = None
    mean_completion: Optional[float] = None  # percent
    laps: int = 0
    eval_metric: Optional[str] = None  # progress | reward | ... as BestModelSelection names it
    eval_mean: Optional[float] = None
    policy: Optional[PolicyUpdate] = None  # the last epoch of the update that followed these episodes


@dataclass(frozen=True)
class BestCheckpoint:
    number: int
    metric: Optional[float] = None
    metric_name: Optional[str] = None
    source: str = ""  # worker 1 | trainer | storage


@dataclass(frozen=True)
class Stall:
    kind: str  # checkpoint | worker | evaluation-loop | exception | exited, or a session.insight.causes kind
    subject: str  # trainer | worker <n>
    message: str  # what is seen, one line
    cause: str  # the likely cause and what to do, one line


@dataclass(frozen=True)
class StallRules:
    checkpoint_minutes: float = STALL_CHECKPOINT_MINUTES
    worker_minutes: float = STALL_WORKER_MINUTES
    evaluation_loop: int = STALL_EVALUATION_LOOP  # Additional evaluation lines while waiting for one checkpoint

    def __post_init__(self) -> None:
        if self.checkpoint_minutes <= 0 or self.worker_minutes <= 0 or self.evaluation_loop < 1:
            raise ValueError("stall thresholds must be positive")


@dataclass(frozen=True)
class Snapshot:
    """Everything the live view shows, as of `at`."""

    at: float
    trainer: TrainerView
    workers: Tuple[WorkerView, ...]
    iterations: Tuple[IterationRow, ...]
    best: Optional[BestCheckpoint]
    stalls: Tuple[Stall, ...]
    gpus: Optional[Tuple[GpuUse, ...]] = None  # None: no GPU (no nvidia-smi)
    gpu_error: Optional[str] = None
    disks: Tuple[DiskUse, ...] = ()
    progress: Optional["TrainingProgress"] = None  # the newest read from storage
    progress_error: Optional[str] = None
    progress_at: Optional[float] = None
    engine_error: Optional[str] = None  # the newest listing of the containers failed; states are older


# --- the state ---------------------------------------------------------------------------------------------------


class _Rate:
    """Steps per second over the newest RATE_WINDOW_S of line times, from (time, cumulative steps) points."""

    def __init__(self) -> None:
        self.points: Deque[Tuple[float, int]] = deque()

    def add(self, at: float, total: int) -> None:
        self.points.append((at, total))
        while self.points and self.points[0][0] < self.points[-1][0] - RATE_WINDOW_S:
            self.points.popleft()

    def per_second(self, now: float) -> Optional[float]:
        if not self.points:
            return None
        last_at, last_total = self.points[-1]
        if now - last_at > RATE_WINDOW_S:
            return 0.0
        first_at, first_total = self.points[0]
        if last_at - first_at < _RATE_MIN_SPAN_S:
            return None
        return (last_total - first_total) / (last_at - first_at)


class _IterationSums:
    def __init__(self) -> None:
        self.episodes = 0
        self.reward = 0.0
        self.progress = 0.0
        self.laps = 0
        self.trainer_episodes = 0
        self.trainer_reward = 0.0
        self.eval_metric: Optional[str] = None
        self.eval_mean: Optional[float] = None
        self.policy: Optional[PolicyUpdate] = None


class _Trainer:
    def __init__(self) -> None:
        self.view = TrainerView()
        self.first_saved: Optional[int] = None


class _Worker:
    def __init__(self, number: int) -> None:
        self.number = number
        self.view = WorkerView(number)
        self.rate = _Rate()
        self.reward = 0.0  # of the episode in progress
        self.previous_checkpoint: Optional[int] = None
        self.first_checkpoint: Optional[int] = None
        self.best_chosen: Optional[int] = None
        self.last_arrival: Optional[float] = None
        self.caught_up = False  # the replayed backlog is behind us (only arrival times need to know)


def _update(view, **changes):
    """A copy of a frozen view with some fields changed (dataclasses.replace without its per-call checks)."""
    copy = object.__new__(type(view))
    copy.__dict__.update(view.__dict__)
    copy.__dict__.update(changes)
    return copy


def _change(view, changes: Dict[str, object]) -> None:
    """Changes the state's own view in place (it runs per log line); snapshots hand out copies."""
    view.__dict__.update(changes)


class LiveState:
    """The session as the lines fed so far tell it. Not thread-safe: feed it from one thread."""

    def __init__(self) -> None:
        self._trainer = _Trainer()
        self._workers: Dict[int, _Worker] = {}
        self._iterations: Dict[int, _IterationSums] = {}  # by checkpoint number
        self._progress: Optional["TrainingProgress"] = None
        self._progress_error: Optional[str] = None
        self._progress_at: Optional[float] = None
        self._gpus: Optional[Tuple[GpuUse, ...]] = None
        self._gpu_error: Optional[str] = None
        self._disks: Tuple[DiskUse, ...] = ()
        self._engine_error: Optional[str] = None

    # --- feeding ----------------------------------------------------------------------------------------------

    def trainer_line(self, line: str, at: float) -> Optional[Event]:
        """One line of the trainer's log, seen at `at`; returns what it said."""
        event = parse_line(line)
        trainer = self._trainer
        view = trainer.view
        changes: Dict[str, object] = {"last_line_at": at}
        if view.first_line_at is None:
            changes["first_line_at"] = at
        if isinstance(event, EpisodeReport):
            changes.update(episodes=view.episodes + 1, episodes_since_checkpoint=view.episodes_since_checkpoint + 1,
                           steps=event.steps, printed_iteration=event.iteration)
            if view.checkpoint is not None:
                sums = self._sums(view.checkpoint)
                sums.trainer_episodes += 1
                sums.trainer_reward += event.total_reward
        elif isinstance(event, PolicyUpdate):
            changes.update(policy=event, policy_at=at, updating_policy=True)
            if view.checkpoint is not None:
                self._sums(view.checkpoint).policy = event
        elif isinstance(event, CheckpointSaved):
            if trainer.first_saved is None:
                trainer.first_saved = event.number
            changes.update(checkpoint=event.number, checkpoint_steps=event.steps, checkpoint_at=at,
                           checkpoints_saved=view.checkpoints_saved + 1, updating_policy=False,
                           episodes_since_checkpoint=0, iteration=event.number - trainer.first_saved)
        elif isinstance(event, BestCheckpointReport):
            if event.best >= 0:
                changes["best_reported"] = event.best
        elif isinstance(event, SimappException):
            changes["exception"] = event
        elif isinstance(event, Malformed):
            changes["malformed"] = view.malformed + 1
        symptom = symptom_of(line)
        if symptom is not None:
            changes["symptom"] = symptom
        _change(view, changes)
        return event

    def worker_line(self, number: int, line: str, at: float) -> Optional[Event]:
        """One line of worker `number`'s log (1-based), seen at `at`; returns what it said."""
        event = parse_line(line)
        worker = self._worker(number)
        if worker.last_arrival is not None and at - worker.last_arrival >= _CAUGHT_UP_GAP_S:
            worker.caught_up = True
        worker.last_arrival = at
        view = worker.view
        changes: Dict[str, object] = {"last_line_at": at}
        if isinstance(event, SimStep):
            changes.update(self._step(worker, event, at))
        elif isinstance(event, CheckpointRestored):
            if worker.first_checkpoint is None:
                worker.first_checkpoint = event.number
            worker.previous_checkpoint = view.checkpoint
            changes.update(checkpoint=event.number, evaluations=0, additional_evaluations=0,
                           awaited_checkpoint=None, seen_checkpoint=None, phase="waiting", mid_episode=False)
        elif isinstance(event, EvaluationStarted):
            changes.update(phase="evaluating", evaluations=view.evaluations + 1, mid_episode=False)
        elif isinstance(event, AdditionalEvaluation):
            changes.update(phase="evaluating", additional_evaluations=view.additional_evaluations + 1,
                           awaited_checkpoint=event.last + 1, seen_checkpoint=event.seen)
        elif isinstance(event, EvaluationEnded):
            changes["eval_episodes"] = view.eval_episodes + 1
        elif isinstance(event, EvaluationMean):
            if worker.previous_checkpoint is not None and event.value is not None:
                sums = self._sums(worker.previous_checkpoint)
                sums.eval_metric, sums.eval_mean = event.metric, event.value
        elif isinstance(event, BestCheckpointChosen):
            worker.best_chosen = max(event.number, worker.best_chosen if worker.best_chosen is not None else -1)
        elif isinstance(event, SimappException):
            changes["exception"] = event
        elif isinstance(event, Malformed):
            changes["malformed"] = view.malformed + 1
        symptom = symptom_of(line) if not isinstance(event, SimStep) else None
        if symptom is not None:
            changes["symptom"] = symptom
        elif isinstance(event, SimStep) and view.symptom is not None and view.symptom.kind == "handshake":
            changes["symptom"] = None  # it drives: the handshake it waited for is done
        _change(view, changes)
        return event

    def _step(self, worker: _Worker, step: SimStep, at: float) -> Dict[str, object]:
        view = worker.view
        if step.episode != view.episode or not view.mid_episode:
            worker.reward = 0.0
        worker.reward += step.reward
        when = step.wall_clock if step.wall_clock is not None else at
        total = view.steps + 1
        if step.wall_clock is not None or worker.caught_up:
            # Arrival times count only once the backlog Engine.follow replays at once is read: it streams
            # without a pause, a simulator's log pauses (episode resets, buffered output) within seconds.
            worker.rate.add(when, total)
        changes: Dict[str, object] = dict(steps=total, episode=step.episode, step=step.step, progress=step.progress,
                                          mid_episode=not step.done, last_step_at=when)
        evaluating = view.phase == "evaluating"  # builds that trace evaluation steps: not training episodes
        if not evaluating:
            changes["phase"] = "driving"
        if step.done and not evaluating:
            lap = step.lap_complete
            changes.update(episodes=view.episodes + 1, laps=view.laps + int(lap))
            if view.checkpoint is not None:
                sums = self._sums(view.checkpoint)
                sums.episodes += 1
                sums.reward += worker.reward
                sums.progress += step.progress
                sums.laps += int(lap)
        return changes

    def set_containers(self, containers: Sequence["ContainerInfo"], error: Optional[str] = None) -> None:
        """The run's containers as the engine lists them: the trainer's is its SageMaker sibling when there is
        one (it does the training), else the rl_coach container. With `error` (the listing failed) the states
        stay as they were."""
        self._engine_error = error
        if error is not None:
            return
        trainer = (_pick([c for c in containers if c.role == "sagemaker"])
                   or _pick([c for c in containers if c.role == "trainer"]))
        if trainer is not None:
            _change(self._trainer.view, dict(state=trainer.status, exit_code=trainer.exit_code,
                                             started_at=_epoch(trainer.started_at)))
        by_number: Dict[int, list] = {}
        for container in containers:
            if container.role == "worker" and container.worker:
                by_number.setdefault(container.worker, []).append(container)
        for number, found in by_number.items():
            chosen = _pick(found)
            assert chosen is not None  # found is never empty
            worker = self._worker(number)
            _change(worker.view, dict(state=chosen.status, exit_code=chosen.exit_code,
                                      started_at=_epoch(chosen.started_at)))

    def set_progress(self, progress: Optional["TrainingProgress"], error: Optional[str], at: float) -> None:
        """The newest read of the run's progress from storage (or why it failed; the previous read stays)."""
        if progress is not None:
            self._progress = progress
        self._progress_error, self._progress_at = error, at

    def set_host(self, gpus: Optional[Sequence[GpuUse]], gpu_error: Optional[str],
                 disks: Sequence[DiskUse]) -> None:
        self._gpus = tuple(gpus) if gpus is not None else None
        self._gpu_error, self._disks = gpu_error, tuple(disks)

    # --- reading ----------------------------------------------------------------------------------------------

    def snapshot(self, now: float, rules: StallRules = StallRules()) -> Snapshot:
        trainer = _update(self._trainer.view)
        workers = tuple(self._worker_view(self._workers[n], now) for n in sorted(self._workers))
        return Snapshot(at=now, trainer=trainer, workers=workers, iterations=self._rows(), best=self._best(),
                        stalls=find_stalls(trainer, workers, now, rules), gpus=self._gpus,
                        gpu_error=self._gpu_error, disks=self._disks, progress=self._progress,
                        progress_error=self._progress_error, progress_at=self._progress_at,
                        engine_error=self._engine_error)

    def _worker_view(self, worker: _Worker, now: float) -> WorkerView:
        view = worker.view
        phase = view.phase
        if phase == "driving" and not view.mid_episode and (view.last_step_at is None
                                                           or now - view.last_step_at >= _IDLE_S):
            phase = "waiting"
        return _update(view, steps_per_s=worker.rate.per_second(now), phase=phase)

    def _base(self) -> Optional[int]:
        """The run's first checkpoint: iteration 0 plays it."""
        if self._trainer.first_saved is not None:
            return self._trainer.first_saved
        firsts = [w.first_checkpoint for w in self._workers.values() if w.first_checkpoint is not None]
        return min(firsts) if firsts else (min(self._iterations) if self._iterations else None)

    def _rows(self) -> Tuple[IterationRow, ...]:
        base = self._base()
        rows = []
        for checkpoint in sorted(self._iterations):
            sums = self._iterations[checkpoint]
            if sums.episodes:
                episodes, reward = sums.episodes, sums.reward / sums.episodes
            elif sums.trainer_episodes:  # no worker log: the trainer's count and its episodes' rewards
                episodes, reward = sums.trainer_episodes, sums.trainer_reward / sums.trainer_episodes
            else:
                episodes, reward = 0, None
            rows.append(IterationRow(
                number=checkpoint - (base if base is not None else 0), checkpoint=checkpoint, episodes=episodes,
                mean_reward=reward, mean_completion=sums.progress / sums.episodes if sums.episodes else None,
                laps=sums.laps, eval_metric=sums.eval_metric, eval_mean=sums.eval_mean, policy=sums.policy))
        return tuple(rows)

    def _best(self) -> Optional[BestCheckpoint]:
        """The newest best checkpoint any source knows: the best only ever moves to a newer checkpoint, so the
        highest number is the most recent news."""
        candidates = [BestCheckpoint(w.best_chosen, source=w.view.name) for w in self._workers.values()
                      if w.best_chosen is not None]
        if self._trainer.view.best_reported is not None:
            candidates.append(BestCheckpoint(self._trainer.view.best_reported, source="trainer"))
        stored = self._progress.best_checkpoint if self._progress is not None else None
        if stored is not None and stored.number is not None:
            # `stored` came from self._progress.
            candidates.append(BestCheckpoint(stored.number, stored.metric, self._progress.best_model_metric,  # type: ignore[union-attr]
                                             source="storage"))
        if not candidates:
            return None
        best = max(candidates, key=lambda c: (c.number, c.metric is not None))
        sums = self._iterations.get(best.number)
        if sums is not None and sums.eval_mean is not None:
            return BestCheckpoint(best.number, sums.eval_mean, sums.eval_metric, best.source)
        return best

    def _worker(self, number: int) -> _Worker:
        if number not in self._workers:
            self._workers[number] = _Worker(number)
        return self._workers[number]

    def _sums(self, checkpoint: int) -> _IterationSums:
        if checkpoint not in self._iterations:
            self._iterations[checkpoint] = _IterationSums()
        return self._iterations[checkpoint]


def _pick(containers: Sequence["ContainerInfo"]) -> Optional["ContainerInfo"]:
    """The running one, else the one started last."""
    if not containers:
        return None
    return max(containers, key=lambda c: (c.running, _epoch(c.started_at) or 0.0))


def _epoch(moment) -> Optional[float]:
    return moment.timestamp() if moment is not None else None


# --- stall rules (pure) ------------------------------------------------------------------------------------------


def find_stalls(trainer: TrainerView, workers: Sequence[WorkerView], now: float,
                rules: StallRules = StallRules()) -> Tuple[Stall, ...]:
    """Every stall the rules see, the most telling first: exceptions, exits, then the waits they explain."""
    found = [*symptom_stalls(trainer, workers), *exception_stalls(trainer, workers), *exited_stalls(trainer, workers)]
    found.extend(evaluation_loops(trainer, workers, now, rules))
    found.extend(worker_stalls(trainer, workers, now, rules))
    stall = checkpoint_stall(trainer, workers, now, rules)
    if stall is not None:
        found.append(stall)
    return tuple(found)


def checkpoint_stall(trainer: TrainerView, workers: Sequence[WorkerView], now: float,
                     rules: StallRules = StallRules()) -> Optional[Stall]:
    """The running trainer has saved no checkpoint for rules.checkpoint_minutes."""
    if not trainer.active:
        return None
    since = trainer.checkpoint_at if trainer.checkpoint_at is not None else (trainer.started_at
                                                                              or trainer.first_line_at)
    if since is None or now - since < rules.checkpoint_minutes * 60:
        return None
    what = (f"checkpoint {trainer.checkpoint}" if trainer.checkpoint is not None else "the trainer's start")
    message = f"no new checkpoint for {_minutes(now - since)} (since {what})"
    return Stall("checkpoint", "trainer", message, _trainer_cause(trainer, workers, now, rules))


def worker_stalls(trainer: TrainerView, workers: Sequence[WorkerView], now: float,
                  rules: StallRules = StallRules()) -> list:
    """Running workers without a SIM_TRACE line for rules.worker_minutes (evaluating ones: without any line)."""
    stalls = []
    limit = rules.worker_minutes * 60
    for worker in workers:
        if not worker.active:
            continue
        if worker.phase == "evaluating":
            last = worker.last_line_at
        else:
            last = worker.last_step_at or worker.started_at or worker.last_line_at
        if last is None or now - last < limit:
            continue
        quiet = _minutes(now - last)
        if worker.phase == "evaluating":
            stalls.append(Stall("worker", worker.name, f"no log line for {quiet} while evaluating",
                                "the simulator hung during an evaluation episode (Gazebo/ROS), or the host is out "
                                f"of CPU or memory; see `deepracer logs worker {worker.number}`"))
        elif worker.mid_episode:
            stalls.append(Stall(
                "worker", worker.name,
                f"no simulation step for {quiet}, stuck at step {worker.step} of episode {worker.episode}",
                "the simulator hung mid-episode (Gazebo/ROS), or the host is out of CPU or memory; "
                f"see `deepracer logs worker {worker.number}`"))
        elif worker.steps == 0:
            stalls.append(Stall("worker", worker.name, f"no simulation step {quiet} after it started",
                                "the simulator did not come up (track, image or GPU problem) or it waits for the "
                                f"trainer's first checkpoint; see `deepracer logs worker {worker.number}`"))
        elif (trainer.checkpoint is not None and worker.checkpoint is not None
              and trainer.checkpoint > worker.checkpoint and trainer.checkpoint_at is not None
              and now - trainer.checkpoint_at >= _LOAD_GRACE_S):
            stalls.append(Stall(
                "worker", worker.name,
                f"idle for {quiet}: the trainer saved checkpoint {trainer.checkpoint}, the worker still has "
                f"{worker.checkpoint}",
                "it cannot load the new checkpoint from the bucket: check storage (MinIO running, credentials, "
                "disk space)"))
        else:
            stalls.append(Stall(
                "worker", worker.name,
                f"idle for {quiet} after episode {worker.episode}, waiting for the next checkpoint",
                _trainer_cause(trainer, workers, now, rules, excluding=worker.number)))
    return stalls


def evaluation_loops(trainer: TrainerView, workers: Sequence[WorkerView], now: float,
                     rules: StallRules = StallRules()) -> list:
    """Workers that have printed at least rules.evaluation_loop `Additional evaluation` lines since they last
    loaded a checkpoint: they evaluate the same checkpoint again and again while the next one does not come."""
    stalls = []
    for worker in workers:
        if worker.additional_evaluations < rules.evaluation_loop or worker.awaited_checkpoint is None:
            continue
        awaited = worker.awaited_checkpoint
        message = (f"{worker.additional_evaluations} extra evaluations of checkpoint {awaited - 1} while waiting "
                   f"for checkpoint {awaited} (it sees {worker.seen_checkpoint})")
        if trainer.checkpoint is not None and trainer.checkpoint >= awaited:
            cause = (f"the trainer saved checkpoint {trainer.checkpoint} but the worker does not see it"
                     + (" (-1: it cannot read model/.coach_checkpoint)" if worker.seen_checkpoint == -1 else "")
                     + ": check storage (MinIO running, credentials, the model prefix)")
        else:
            cause = _trainer_cause(trainer, workers, now, rules, excluding=worker.number)
        stalls.append(Stall("evaluation-loop", worker.name, message, cause))
    return stalls


def symptom_stalls(trainer: TrainerView, workers: Sequence[WorkerView]) -> list:
    """Failures the logs named (GPU memory, storage, the handshake), with their cause: they explain the rest."""
    views: list[tuple[str, Union[TrainerView, WorkerView]]] = [("trainer", trainer), *((w.name, w) for w in workers)]
    stalls = []
    for subject, view in views:
        symptom = view.symptom
        if symptom is None or not worth_reporting(symptom):
            continue
        waited = f" (waited {_minutes(symptom.waited_s)})" if symptom.waited_s is not None else ""
        stalls.append(Stall(symptom.kind, subject, symptom.evidence + waited, symptom.cause))
    return stalls


def exception_stalls(trainer: TrainerView, workers: Sequence[WorkerView]) -> list:
    sources = [("trainer", trainer.exception), *((w.name, w.exception) for w in workers)]
    return [Stall("exception", subject, f"simapp_exception: {error}", _exception_cause(error))
            for subject, error in sources if error is not None]


def exited_stalls(trainer: TrainerView, workers: Sequence[WorkerView]) -> list:
    """Containers that ended badly: a non-zero exit, or a worker that ended while the trainer runs."""
    stalls = []
    views: list[tuple[str, Union[TrainerView, WorkerView]]] = [("trainer", trainer), *((w.name, w) for w in workers)]
    for subject, view in views:
        if view.state not in _ENDED:
            continue
        code = view.exit_code
        if code == 0 and (subject == "trainer" or not trainer.active):
            continue
        stalls.append(Stall("exited", subject, f"{subject} exited with code {code}", _exit_cause(subject, code)))
    return stalls


def _trainer_cause(trainer: TrainerView, workers: Sequence[WorkerView], now: float, rules: StallRules,
                   excluding: Optional[int] = None) -> str:
    """Why the trainer has not produced the next checkpoint, from what it and the other workers show."""
    if trainer.exception is not None:
        return f"the trainer failed: {trainer.exception}"
    if trainer.state in _ENDED:
        return f"the trainer exited (code {trainer.exit_code}); see `deepracer logs trainer`"
    if trainer.last_line_at is None:
        return ("the trainer has not saved it and its log is not available here; "
                "see `deepracer logs trainer`")
    for worker in workers:
        if worker.number == excluding:
            continue
        if worker.state in _ENDED:
            return (f"the trainer waits for episodes from {worker.name}, which exited "
                    f"(code {worker.exit_code}); stop and start the run again")
        stuck = _stuck(worker, now, rules)
        if stuck:
            return f"the trainer waits for episodes from {worker.name}, which {stuck}"
    if trainer.updating_policy:
        since = f" for {_minutes(now - trainer.policy_at)}" if trainer.policy_at is not None else ""
        return (f"the trainer is still updating the policy{since}: slow without a GPU or with many epochs or a "
                "large batch; check GPU use")
    return (f"the trainer has {trainer.episodes_since_checkpoint} episodes of this iteration and waits for more: "
            "the workers are slow or cannot reach it (network), or it hangs; see `deepracer logs trainer`")


def _stuck(worker: WorkerView, now: float, rules: StallRules) -> Optional[str]:
    """How a running worker is stuck, if it is: silent mid-episode or while evaluating."""
    if not worker.active:
        return None
    if worker.phase == "evaluating":
        last, how = worker.last_line_at, "has been silent while evaluating"
    elif worker.mid_episode:
        last, how = worker.last_step_at, "is stuck mid-episode"
    else:
        return None
    return how if last is not None and now - last >= rules.worker_minutes * 60 else None


def _exception_cause(error: SimappException) -> str:
    text = error.message.lower()
    if "nan" in text.split() or "nan detected" in text:
        return "the loss became NaN: lower the learning rate or keep the reward function's values moderate"
    if error.event_type == "user_error" or error.error_code.startswith("4"):
        return "a user error: fix the file or value the message names (reward function, model metadata, track) " \
               "and start again"
    return "a simulator or system error; the logs around it say more (`deepracer logs trainer|worker N`)"


def _exit_cause(subject: str, code: Optional[int]) -> str:
    where = "trainer" if subject == "trainer" else f"worker {subject.split()[-1]}"
    if code == 137:
        return f"killed (SIGKILL): out of memory, most likely; see `dmesg` and `deepracer logs {where}`"
    if code == 143:
        return "stopped (SIGTERM), by `deepracer stop` or someone else"
    if code == 0:
        return "it ended while the trainer still runs: the trainer will wait for its episodes"
    return f"it failed; see `deepracer logs {where}`"


def _minutes(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"

