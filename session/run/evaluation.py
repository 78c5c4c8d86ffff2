"""Evaluate a trained model: one evaluation worker on the simulator image, watched like training, and its result.

What runs (DRfC's docker-compose-eval.yml, DRFC.md §3.4, §3.8): ONE simulation worker running
`run.sh run evaluation.launch.py`, which reads `<model prefix>/evaluation_params.yaml`, restores the chosen
checkpoint and drives N trials; the trainer has nothing to do in evaluation, so none is started. The container
is `deepracer-<run>-evaluation`, labelled like training's (role `evaluation`, the evaluated prefix), so `status`
and `stop-evaluation` find it from any shell.

Where things go (one evaluation = one timestamp `<ts>`, UTC `YYYYmmddHHMMSS`):

- `<evaluated prefix>/evaluation_params.yaml` (DR_LOCAL_S3_EVAL_PARAMS_FILE), simtrace under
  `<evaluated prefix>/evaluation-<ts>/`, videos under `<evaluated prefix>/mp4/` (with `--mp4`);
- the simulator's metrics at `<metrics prefix>/evaluation/evaluation-<ts>.json` (FORMATS.md §5.4);
- our result, `<model prefix>/evaluation/results-<ts>.json`, beside the model the user named (also with
  `--clone`, whose copy `<prefix>-E` is only a snapshot to evaluate while training goes on, as DRfC's `-c`);
- the worker's log at `<evaluated prefix>/logs/<started>-evaluation.log` once it stops.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from session.core import console
from session.core.config import RunConfig, SystemConfig
from session.core.console import Say
from session.engine.containers import (
    LABEL_PREFIX,
    LABEL_ROLE,
    LABEL_RUN,
    ContainerInfo,
    ContainerSpec,
    WatchEvent,
    parse_simapp_exception,
)
from session.engine.specs import NETWORK, StorageAccess, container_name, image_of, wants_gpu, worker_cuda_devices
from session.host.factory import Host
from session.run.evaluation_params import CHECKPOINTS, evaluation_params, mp4_prefix, simtrace_prefix
from session.run.progress import LAP_COMPLETE, parse_checkpoints_json
from session.run.training import READY_TIMEOUT_S, TrainingError
from session.run.training_params import dump
from session.storage.layout import CHECKPOINTS_JSON
from session.storage.s3 import ObjectNotFound, Storage, StorageError

ROLE = "evaluation"
# One string for the image's `bash -c` entrypoint, as DRfC's compose passes ROBOMAKER_COMMAND.
COMMAND = ("/opt/ml/code/run.sh run evaluation.launch.py",)
READY_PATTERNS = {ROLE: [r"SIM_TRACE_LOG:"]}  # the car is on the track (FORMATS.md §5.1)
CLONE_SUFFIX = "-E"  # DRfC's `dr-start-evaluation -c` evaluates a copy under <prefix>-E
CLONED_FOLDERS = ("model", "ip")
RESULTS_FOLDER = "evaluation"  # <model prefix>/evaluation/results-<ts>.json
RESULT_VERSION = 1
POLL_S = 5.0  # the simulator uploads its metrics once per trial; a trial takes tens of seconds
_TIMESTAMP = "%Y%m%d%H%M%S"
_EXCEPTION_TAIL = 200  # log lines searched for the simulator's simapp_exception after a death


class EvaluationError(TrainingError):
    """A reason not to evaluate (or a failed start); `str()` is one line for the user. A TrainingError, so the
    CLI reports it as one line like every other user error."""


# --- values --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationRun:
    """One evaluation as started (or found again from its container and params file)."""

    model_prefix: str  # the prefix evaluated (<source>-E with --clone)
    source_prefix: str  # the model the user named (DR_LOCAL_S3_MODEL_PREFIX)
    timestamp: str
    checkpoint: str  # best | last
    trials: int
    params_key: str
    metrics_key: str
    simtrace_prefix: str
    race_type: str
    world_name: str
    checkpoint_name: Optional[str] = None  # e.g. 27_Step-46417.ckpt, from deepracer_checkpoints.json
    mp4_prefix: Optional[str] = None
    opponent_prefix: Optional[str] = None
    container: Optional[ContainerInfo] = None


@dataclass(frozen=True)
class TraceStats:
    """One trial as the simtrace CSV tells it (FORMATS.md §5.2): steps, how far, how fast on average."""

    steps: int
    progress: float  # highest progress in percent
    mean_speed: float  # mean commanded speed, m/s
    off_track_steps: int  # steps whose status was off_track (the moments the car left the track)


@dataclass(frozen=True)
class Trial:
    """One entry of the evaluation metrics JSON (FORMATS.md §5.4)."""

    trial: int
    status: str  # episode_status as written: Lap complete, Off track, ... or In progress
    completion: float  # percent of a lap
    elapsed_s: float  # elapsed_time_in_milliseconds / 1000, penalties included
    off_track: int = 0
    crashes: int = 0
    immobilized: int = 0
    reversed: int = 0
    resets: int = 0
    trace: Optional[TraceStats] = None

    @property
    def completed(self) -> bool:
        """A full lap. With continuous evaluation (IS_CONTINUOUS) a trial that went round ends while the car keeps
        driving, and the simulator writes `In progress` with 100 %: that is a lap too."""
        return self.completion >= 100 or self.status == LAP_COMPLETE

    @property
    def lap_time_s(self) -> Optional[float]:
        return self.elapsed_s if self.completed else None


@dataclass(frozen=True)
class EvaluationResult:
    """The trials of one evaluation, with where they came from; `note` says why it is incomplete, if it is."""

    metrics_key: str
    trials: tuple[Trial, ...]
    expected_trials: Optional[int] = None
    model_prefix: Optional[str] = None
    source_prefix: Optional[str] = None
    checkpoint: Optional[str] = None
    checkpoint_name: Optional[str] = None
    race_type: Optional[str] = None
    world_name: Optional[str] = None
    timestamp: Optional[str] = None
    simtrace_prefix: Optional[str] = None
    note: str = ""

    @property
    def complete(self) -> bool:
        return self.expected_trials is None or len(self.trials) >= self.expected_trials

    @property
    def laps(self) -> int:
        return sum(1 for trial in self.trials if trial.completed)

    @property
    def lap_times_s(self) -> list[float]:
        return [trial.lap_time_s for trial in self.trials if trial.lap_time_s is not None]

    @property
    def best_lap_s(self) -> Optional[float]:
        return min(self.lap_times_s) if self.lap_times_s else None

    @property
    def mean_lap_s(self) -> Optional[float]:
        times = self.lap_times_s
        return sum(times) / len(times) if times else None

    @property
    def mean_completion(self) -> Optional[float]:
        return sum(t.completion for t in self.trials) / len(self.trials) if self.trials else None

    @property
    def off_track(self) -> int:
        return sum(trial.off_track for trial in self.trials)

    def to_dict(self) -> dict[str, Any]:
        """The saved form: the run's facts, a summary, and every trial with its raw status and derived lap time."""
        trials = []
        for trial in self.trials:
            entry = {key: value for key, value in asdict(trial).items() if key != "trace"}
            entry.update(completed=trial.completed, lap_time_s=trial.lap_time_s)
            if trial.trace is not None:
                entry["trace"] = asdict(trial.trace)
            trials.append(entry)
        return {
            "version": RESULT_VERSION,
            "model_prefix": self.model_prefix, "source_prefix": self.source_prefix,
            "checkpoint": self.checkpoint, "checkpoint_name": self.checkpoint_name,
            "race_type": self.race_type, "world_name": self.world_name, "timestamp": self.timestamp,
            "metrics_key": self.metrics_key, "simtrace_prefix": self.simtrace_prefix,
            "expected_trials": self.expected_trials, "complete": self.complete, "note": self.note,
            "summary": {"trials": len(self.trials), "laps": self.laps, "best_lap_s": self.best_lap_s,
                        "mean_lap_s": self.mean_lap_s, "mean_completion": self.mean_completion,
                        "off_track": self.off_track},
            "trials": trials,
        }


# --- pure parsing and rendering ------------------------------------------------------------------------------


def parse_metrics(data: bytes) -> tuple[Trial, ...]:
    """The trials of an evaluation metrics JSON (`{"metrics": [...]}`). Raises ValueError when the bytes are not
    (yet) such a document: the simulator rewrites it after every trial."""
    document = json.loads(data)
    entries = document.get("metrics") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError('no "metrics" list')
    trials = []
    for position, entry in enumerate(e for e in entries if isinstance(e, dict)):
        trials.append(Trial(
            trial=_int(entry.get("trial"), position + 1),
            status=str(entry.get("episode_status") or ""),
            completion=_float(entry.get("completion_percentage")),
            elapsed_s=_float(entry.get("elapsed_time_in_milliseconds")) / 1000,
            off_track=_int(entry.get("off_track_count")), crashes=_int(entry.get("crash_count")),
            immobilized=_int(entry.get("immobilized_count")), reversed=_int(entry.get("reversed_count")),
            resets=_int(entry.get("reset_count")),
        ))
    return tuple(trials)


def parse_simtrace(text: str) -> dict[int, TraceStats]:
    """Per episode (0-based, = trial - 1) of an evaluation simtrace CSV; columns found by header name, since
    their number differs between simulator versions."""
    rows: dict[int, list[Mapping[str, str]]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        try:
            rows.setdefault(int(float(row["episode"])), []).append(row)
        except (KeyError, TypeError, ValueError):
            continue
    stats = {}
    for episode, steps in rows.items():
        speeds = [_float(row.get("throttle")) for row in steps]
        stats[episode] = TraceStats(
            steps=len(steps), progress=max(_float(row.get("progress")) for row in steps),
            mean_speed=sum(speeds) / len(speeds),
            off_track_steps=sum(1 for row in steps if row.get("episode_status") == "off_track"))
    return stats


def with_traces(trials: Sequence[Trial], traces: Mapping[int, TraceStats]) -> tuple[Trial, ...]:
    return tuple(replace(trial, trace=traces.get(trial.trial - 1)) for trial in trials)


def render_table(result: EvaluationResult) -> str:
    """Plain text for people: a heading, one row per trial, a summary line, and the note if any."""
    lines = []
    if result.model_prefix:
        checkpoint = result.checkpoint_name or "?"
        which = f" ({result.checkpoint})" if result.checkpoint else ""
        where = f" on {result.world_name}" if result.world_name else ""
        race = f", {result.race_type}" if result.race_type and result.race_type != "TIME_TRIAL" else ""
        lines.append(f"{result.model_prefix}: checkpoint {checkpoint}{which}{where}{race}")
    traced = any(trial.trace is not None for trial in result.trials)
    header = ["trial", "result", "progress", "time", "off-track", "crashes", "resets"]
    if traced:
        header += ["steps", "speed"]
    rows = [header]
    for trial in result.trials:
        row = [str(trial.trial), LAP_COMPLETE if trial.completed else (trial.status or "?"),
               f"{trial.completion:.0f} %", f"{trial.elapsed_s:.3f} s", str(trial.off_track), str(trial.crashes),
               str(trial.resets)]
        if traced:
            row += ([str(trial.trace.steps), f"{trial.trace.mean_speed:.2f} m/s"] if trial.trace else ["", ""])
        rows.append(row)
    if result.trials:
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for row in rows:
            cells = [cell.ljust(width) if i == 1 else cell.rjust(width)
                     for i, (cell, width) in enumerate(zip(row, widths))]
            lines.append("  ".join(cells).rstrip())
    of = f" of {result.expected_trials}" if result.expected_trials is not None else ""
    summary = f"{len(result.trials)}{of} trials, {result.laps} laps"
    if result.best_lap_s is not None:
        summary += f": best {result.best_lap_s:.3f} s, mean {result.mean_lap_s:.3f} s"
    if result.mean_completion is not None:
        summary += f"; mean progress {result.mean_completion:.0f} %; off-track {result.off_track}"
    lines.append(summary)
    if result.note:
        lines.append(result.note)
    return "\n".join(lines)


def evaluation_spec(system: SystemConfig, run: RunConfig, storage: StorageAccess, *, model_prefix: str,
                    params_file: str, trials: int) -> ContainerSpec:
    """The evaluation worker: DRfC's eval robomaker service, started by us as one container."""
    env = {
        "WORLD_NAME": run.world_name,
        "MODEL_S3_PREFIX": model_prefix,
        "MODEL_S3_BUCKET": system.local_s3_bucket,
        "APP_REGION": system.aws_app_region,
        "S3_YAML_NAME": params_file,
        "NUMBER_OF_TRIALS": str(trials),
        "DEBUG_REWARD": "True" if run.eval_debug_reward else "False",
        "KINESIS_VIDEO_STREAM_NAME": system.kinesis_stream_name or "",
        "ENABLE_KINESIS": "True" if system.camera_kvs_enable else "False",
        "ENABLE_GUI": "True" if system.gui_enable else "False",
        "ROLLOUT_IDX": "0",
        "ROS_MASTER_URI": "http://localhost:11311/",
        "ROS_IP": "127.0.0.1",
        "GAZEBO_RENDER_ENGINE": system.gazebo_render_engine,
        "CUDA_VISIBLE_DEVICES": worker_cuda_devices(system),
        **{key: str(value) for key, value in {
            "RTF_OVERRIDE": run.eval_rtf,
            "GAZEBO_ARGS": system.gazebo_args,
            "TELEGRAF_HOST": system.telegraf_host,
            "TELEGRAF_PORT": system.telegraf_port,
        }.items() if value not in (None, "")},
        **storage.environment(),
    }
    return ContainerSpec(
        name=container_name(run.run_id, ROLE),
        image=image_of(system),
        command=COMMAND,
        environment=env,
        labels={LABEL_RUN: str(run.run_id), LABEL_ROLE: ROLE, LABEL_PREFIX: model_prefix},
        mounts=(),
        network=NETWORK,
        gpus=wants_gpu(system),
    )


# --- checks --------------------------------------------------------------------------------------------------


def check_model(storage: Storage, prefix: str, checkpoint: str, what: str = "model") -> str:
    """The name of the checkpoint `checkpoint` (best|last) of the model at `prefix`, whose files the simulator
    will restore; EvaluationError naming what is missing otherwise."""
    folder = f"{prefix}/model/"
    names = {info.key[len(folder):] for info in storage.list_objects(folder)}
    where = storage.url(folder)
    if not names:
        raise EvaluationError(f"no {what} at {where}: expected the checkpoints of a trained model there")
    if "model_metadata.json" not in names:
        raise EvaluationError(f"{where}model_metadata.json is missing; the simulator reads the action space there")
    if CHECKPOINTS_JSON not in names:
        raise EvaluationError(f"{where}{CHECKPOINTS_JSON} is missing, so the simulator cannot find the {checkpoint} "
                              "checkpoint; has the training finished its first iteration?")
    try:
        last, best = parse_checkpoints_json(storage.get_json(folder + CHECKPOINTS_JSON))
    except StorageError as error:
        raise EvaluationError(str(error)) from None
    chosen = best if checkpoint == "best" else last
    if chosen is None:
        other = "last" if checkpoint == "best" else "best"
        raise EvaluationError(f"--checkpoint {checkpoint}: {where}{CHECKPOINTS_JSON} names no {checkpoint} "
                              f"checkpoint; try --checkpoint {other}")
    missing = [suffix for suffix in (".index", ".data-")
               if not any(name.startswith(chosen.name + suffix) for name in names)]
    if missing:
        raise EvaluationError(f"--checkpoint {checkpoint}: {chosen.name} is named in {CHECKPOINTS_JSON} but its "
                              f"{' and '.join(m.strip('.-') for m in missing)} file is not in {where}")
    return chosen.name


def evaluation_containers(host: Host) -> list[ContainerInfo]:
    """This run's evaluation containers in any state, newest last."""
    found = host.engine.list(run=str(host.run.run_id), role=ROLE)
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(found, key=lambda c: c.started_at or epoch)


# --- the edges -----------------------------------------------------------------------------------------------


def start_evaluation(host: Host, *, checkpoint: Optional[str] = None, trials: Optional[int] = None,
                     mp4: Optional[bool] = None, clone: bool = False, timeout_s: float = READY_TIMEOUT_S,
                     say: Say = console.say, on_event: Optional[Callable[[WatchEvent], None]] = None,
                     now: Optional[datetime] = None) -> EvaluationRun:
    """Checks, (clones,) uploads the params, starts the evaluation worker and waits until it drives.

    Defaults come from run.env (DR_EVAL_CHECKPOINT, DR_EVAL_NUMBER_OF_TRIALS, DR_EVAL_SAVE_MP4). Raises
    EvaluationError; on a failed start the worker is stopped and its log saved."""
    system, run, engine, storage = host.system, host.run, host.engine, host.storage
    checkpoint = checkpoint or run.eval_checkpoint
    trials = run.eval_number_of_trials if trials is None else trials
    mp4 = run.eval_save_mp4 if mp4 is None else mp4
    if checkpoint not in CHECKPOINTS:
        raise EvaluationError(f"--checkpoint: expected one of {', '.join(CHECKPOINTS)}, got {checkpoint!r}")
    if trials < 1:
        raise EvaluationError(f"--trials: expected at least 1, got {trials}")
    running = [c for c in evaluation_containers(host) if c.running]
    if running:
        raise EvaluationError(f"an evaluation of run {run.run_id} is already running ({running[0].name}, "
                              f"{running[0].prefix}); `deepracer stop-evaluation` first")
    image = image_of(system)
    if not engine.image_present(image):
        raise EvaluationError(f"image {image} is not on this host; pull it with `docker pull {image}`")

    source = run.local_s3_model_prefix
    checkpoint_name = check_model(storage, source, checkpoint)
    opponent = None
    if run.race_type == "HEAD_TO_MODEL":
        opponent = run.eval_opp_s3_model_prefix
        if opponent == source:
            raise EvaluationError(f"DR_EVAL_OPP_S3_MODEL_PREFIX: expected another model to race against, got "
                                  f"{opponent}, the model being evaluated")
        check_model(storage, opponent, checkpoint, what="opponent model (DR_EVAL_OPP_S3_MODEL_PREFIX)")
    prefix = source
    if clone:
        prefix = source + CLONE_SUFFIX
        for folder in CLONED_FOLDERS:
            if storage.prefix_has_objects(f"{source}/{folder}/"):
                copied = storage.copy_prefix(f"{source}/{folder}", storage.bucket, f"{prefix}/{folder}",
                                             overwrite=True)
                say(f"copied {len(copied.copied)} objects of {storage.url(f'{source}/{folder}/')} "
                    f"to {storage.url(f'{prefix}/{folder}/')}")
        # Training may have moved on (and pruned files) while we copied: check the copy itself.
        checkpoint_name = check_model(storage, prefix, checkpoint, what="cloned model")

    timestamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime(_TIMESTAMP)
    storage_access = StorageAccess.from_system(system)
    params = evaluation_params(system, run, checkpoint=checkpoint, trials=trials, mp4=mp4, timestamp=timestamp,
                               model_prefix=prefix, opponent=opponent, s3_endpoint_url=storage_access.endpoint_url)
    params_key = f"{prefix}/{run.local_s3_eval_params_file}"
    storage.put_text(params_key, dump(params), "application/x-yaml")
    say(f"wrote {storage.url(params_key)}")

    engine.ensure_network(NETWORK)
    spec = evaluation_spec(system, run, storage_access, model_prefix=prefix,
                           params_file=run.local_s3_eval_params_file, trials=trials)
    started: Optional[ContainerInfo] = None
    try:
        started = engine.start(spec)
        say(f"started {spec.name}: {trials} trial(s) of {prefix} with the {checkpoint} checkpoint "
            f"({checkpoint_name}) on {run.world_name}")
        say(f"waiting until the car drives (up to {timeout_s / 60:.0f} min) ...")
        readiness = engine.watch_until_ready([started], READY_PATTERNS, timeout_s, on_event=on_event)
    except BaseException:
        if started is not None:
            engine.stop([started], timeout=10)
        raise
    if not readiness.ready:
        for line in readiness.error_lines:
            say(f"  | {line}")
        stopped = engine.stop([started], timeout=10)
        _save_logs(host, stopped or [engine.get(started.id) or started], say)
        raise EvaluationError(f"evaluation did not start: {readiness.summary}; stopped it")
    return EvaluationRun(
        model_prefix=prefix, source_prefix=source, timestamp=timestamp, checkpoint=checkpoint, trials=trials,
        params_key=params_key, metrics_key=_first(params["METRICS_S3_OBJECT_KEY"]) or "",
        simtrace_prefix=simtrace_prefix(prefix, timestamp), race_type=run.race_type, world_name=run.world_name,
        checkpoint_name=checkpoint_name, mp4_prefix=mp4_prefix(prefix) if mp4 else None,
        opponent_prefix=opponent, container=engine.get(started.id) or started)


def find_evaluation(host: Host) -> Optional[EvaluationRun]:
    """The run's newest evaluation (running or ended), rebuilt from its container and its params file; None when
    there is no evaluation container, or its params file is gone."""
    containers = evaluation_containers(host)
    if not containers:
        return None
    container = containers[-1]
    prefix = container.prefix or host.run.local_s3_model_prefix
    params_key = f"{prefix}/{host.run.local_s3_eval_params_file}"
    try:
        params = host.storage.get_yaml(params_key)
    except ObjectNotFound:
        return None
    if not isinstance(params, dict):
        return None
    simtrace = _first(params.get("SIMTRACE_S3_PREFIX")) or ""
    match = re.search(r"evaluation-(\d{14})$", simtrace)
    prefixes = params.get("MODEL_S3_PREFIX")
    checkpoint = str(params.get("EVAL_CHECKPOINT") or "")
    checkpoint_name = None
    try:
        last, best = parse_checkpoints_json(host.storage.get_json(f"{prefix}/model/{CHECKPOINTS_JSON}"))
        chosen = best if checkpoint == "best" else last
        checkpoint_name = chosen.name if chosen else None
    except StorageError:  # gone or half-written: the name is only for the heading
        pass
    return EvaluationRun(
        model_prefix=prefix, source_prefix=host.run.local_s3_model_prefix, timestamp=match[1] if match else "",
        checkpoint=checkpoint, trials=_int(params.get("NUMBER_OF_TRIALS"), 0), checkpoint_name=checkpoint_name,
        params_key=params_key, metrics_key=_first(params.get("METRICS_S3_OBJECT_KEY")) or "",
        simtrace_prefix=simtrace, race_type=str(params.get("RACE_TYPE") or ""),
        world_name=str(params.get("WORLD_NAME") or ""),
        mp4_prefix=_first(params.get("MP4_S3_OBJECT_PREFIX")),
        opponent_prefix=prefixes[1] if isinstance(prefixes, list) and len(prefixes) > 1 else None,
        container=container)


def read_result(storage: Storage, metrics_key: str, *, simtrace: Optional[str] = None,
                expected_trials: Optional[int] = None) -> EvaluationResult:
    """The evaluation metrics JSON at `metrics_key` as an EvaluationResult; with `simtrace` (the evaluation's
    simtrace prefix), each trial also gets its steps and mean speed from the CSV there, when one exists.

    ObjectNotFound when the simulator has not written the metrics yet; EvaluationError when it is not readable."""
    data = storage.get_bytes(metrics_key)
    try:
        trials = parse_metrics(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise EvaluationError(f"{storage.url(metrics_key)} is not (yet) an evaluation metrics JSON: {error}") from None
    if simtrace:
        traces: dict[int, TraceStats] = {}
        for info in storage.list_objects(simtrace.rstrip("/")):
            if info.key.endswith(".csv"):
                try:
                    traces.update(parse_simtrace(storage.get_text(info.key)))
                except StorageError:
                    continue
        trials = with_traces(trials, traces)
    return EvaluationResult(metrics_key=metrics_key, trials=trials, expected_trials=expected_trials,
                            simtrace_prefix=simtrace)


def result_so_far(storage: Storage, evaluation: EvaluationRun) -> Optional[EvaluationResult]:
    """The evaluation's metrics as they are now, with its facts and the simtrace's numbers; None while the
    simulator has written none (or is rewriting them): what `stop-evaluation` shows of an interrupted one."""
    result = _read_quietly(storage, evaluation)
    return None if result is None else _with_trace(storage, _describe(result, evaluation), evaluation)


def wait_for_result(host: Host, evaluation: EvaluationRun, *, poll_s: float = POLL_S,
                    timeout_s: Optional[float] = None, say: Say = console.say,
                    sleep: Callable[[float], None] = time.sleep) -> EvaluationResult:
    """Follows the evaluation until its metrics hold every trial, or its worker exits, or `timeout_s` passes;
    says each trial as it arrives. An incomplete result carries a `note` saying why (with the simulator's
    simapp_exception when the worker died of one)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    container = evaluation.container
    reported = 0
    result = _describe(EvaluationResult(evaluation.metrics_key, (), evaluation.trials), evaluation)
    while True:
        exited = None
        if container is not None:
            current = host.engine.get(container.id)
            if current is None or not current.running:
                exited = current or container
        # Read after looking at the container: a worker that uploaded its last trial and exited is then complete.
        result = _describe(_read_quietly(host.storage, evaluation) or result, evaluation)
        for trial in result.trials[reported:]:
            say(_trial_line(trial, evaluation.trials))
        reported = max(reported, len(result.trials))
        if result.complete:
            return _with_trace(host.storage, result, evaluation)
        if exited is not None:
            return _with_trace(host.storage, replace(result, note=_death_note(host, exited, result)), evaluation)
        if deadline is not None and time.monotonic() >= deadline:
            return replace(result, note=f"{len(result.trials)} of {evaluation.trials} trials after "
                                        f"{timeout_s:.0f} s; the evaluation keeps running "
                                        "(`deepracer stop-evaluation` stops it)")
        sleep(poll_s)


def stop_evaluation(host: Host, *, say: Say = console.say, timeout: float = 30) -> list[ContainerInfo]:
    """Stops the run's evaluation worker and saves its log beside the evaluated model. A worker that already
    ended by itself gets its log saved too (once). Returns the containers whose log was saved."""
    containers = evaluation_containers(host)
    running = [c for c in containers if c.running]
    stopped = host.engine.stop(running, timeout=timeout) if running else []
    for container in stopped:
        say(f"stopped {container.name}")
    if not running:
        say(f"run {host.run.run_id}: no evaluation is running")
    ended = [c for c in containers if not c.running and not host.storage.exists(_log_key(host, c))]
    saved = [*stopped, *ended]
    _save_logs(host, saved, say)
    return saved


def save_result(storage: Storage, prefix: str, result: EvaluationResult) -> str:
    """Writes the result as JSON to `<prefix>/evaluation/results-<ts>.json` (the evaluation's timestamp, else
    now) and returns the key. Never replaces an earlier result: a second save of the same evaluation gets a
    numbered name."""
    stamp = result.timestamp or datetime.now(timezone.utc).strftime(_TIMESTAMP)
    key = f"{prefix}/{RESULTS_FOLDER}/results-{stamp}.json"
    number = 1
    while storage.exists(key):
        number += 1
        key = f"{prefix}/{RESULTS_FOLDER}/results-{stamp}-{number}.json"
    storage.put_json(key, result.to_dict())
    return key


# --- helpers -------------------------------------------------------------------------------------------------


def _describe(result: EvaluationResult, evaluation: EvaluationRun) -> EvaluationResult:
    return replace(result, expected_trials=evaluation.trials, model_prefix=evaluation.model_prefix,
                   source_prefix=evaluation.source_prefix, checkpoint=evaluation.checkpoint,
                   checkpoint_name=evaluation.checkpoint_name, race_type=evaluation.race_type,
                   world_name=evaluation.world_name, timestamp=evaluation.timestamp,
                   simtrace_prefix=evaluation.simtrace_prefix)


def _read_quietly(storage: Storage, evaluation: EvaluationRun) -> Optional[EvaluationResult]:
    """The metrics so far, or None while they are missing or half-written."""
    try:
        return read_result(storage, evaluation.metrics_key)
    except (ObjectNotFound, EvaluationError):
        return None


def _with_trace(storage: Storage, result: EvaluationResult, evaluation: EvaluationRun) -> EvaluationResult:
    """The final result with the simtrace's per-trial numbers, when the simulator uploaded a CSV."""
    if not evaluation.simtrace_prefix:
        return result
    try:
        traced = read_result(storage, evaluation.metrics_key, simtrace=evaluation.simtrace_prefix)
    except (ObjectNotFound, EvaluationError):
        return result
    return replace(result, trials=traced.trials) if len(traced.trials) == len(result.trials) else result


def _trial_line(trial: Trial, of: int) -> str:
    outcome = f"lap in {trial.elapsed_s:.3f} s" if trial.completed else (
        f"{trial.status or 'ended'} at {trial.completion:.0f} %")
    return f"trial {trial.trial} of {of}: {outcome}, off-track {trial.off_track}, resets {trial.resets}"


def _death_note(host: Host, exited: ContainerInfo, result: EvaluationResult) -> str:
    code = f" with code {exited.exit_code}" if exited.exit_code is not None else ""
    note = f"{exited.name} exited{code} after {len(result.trials)} of {result.expected_trials} trials"
    try:
        lines = host.engine.logs(exited, tail=_EXCEPTION_TAIL).splitlines()
    except Exception:  # noqa: BLE001 - the container may be gone; the exit is the news
        lines = []
    errors = [error for error in map(parse_simapp_exception, lines) if error is not None]
    if errors:
        note += f": {errors[-1]}"
    elif lines and exited.exit_code:
        note += f"; last line: {' '.join(lines[-1].split())}"
    return note


def _log_key(host: Host, container: ContainerInfo) -> str:
    stamp = container.started_at.strftime(_TIMESTAMP) if container.started_at else "unknown"
    return f"{container.prefix or host.run.local_s3_model_prefix}/logs/{stamp}-{ROLE}.log"


def _save_logs(host: Host, containers: Iterable[ContainerInfo], say: Say) -> None:
    for container in containers:
        key = _log_key(host, container)
        host.storage.put_text(key, host.engine.logs(container))
        say(f"saved the evaluation log to {host.storage.url(key)}")


def _first(value: Any) -> Optional[str]:
    if isinstance(value, list):
        return str(value[0]) if value else None
    return None if value is None else str(value)


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def _float(value: Any) -> float:
    if isinstance(value, bool):
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0

