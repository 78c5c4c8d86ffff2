"""A model's training progress, read from what the simulator writes under its prefix (FORMATS.md §4.3, §5.3).

Two sources, both rewritten while training runs:

- the training metrics JSON, one file per simulation worker (`<metrics prefix>/TrainingMetrics.json`, then
  `TrainingMetrics_<n>.json` for the n-th further worker; the console and DRoA write
  `<metrics prefix>/training/<job>.json` and `<job>_<n>.json`), one entry per episode;
- `<model prefix>/model/`: a TF checkpoint per iteration (`<n>_Step-<steps>.ckpt.index` ...) and
  `deepracer_checkpoints.json`, the last evaluated and the best checkpoint.

Episodes are grouped by the trainer's iteration, which is also the number of the checkpoint that played them
(`Training> ... Training iteration=<n>` in the trainer's log, `<n>-iteration.csv` in simtrace). The first worker
restarts its `trial` counter at every iteration and, between iterations, evaluates that iteration's checkpoint
(`phase: evaluation` entries, which repeat the last training episode's numbers); the other workers count trials
without restarting and never evaluate, but play as many episodes per iteration as the first one does.

The simulator rewrites a metrics file after every episode; a file that does not parse is "not yet readable",
reported in `TrainingProgress.notes` and otherwise skipped. Only `model/` and the metrics files are listed
and read, never the simtrace folders (thousands of objects in a long run).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Sequence

from session.core.text import iso
from session.run.training_params import TRAINING_METRICS_NAME
from session.storage.layout import CHECKPOINTS_JSON
from session.storage.s3 import ObjectNotFound

if TYPE_CHECKING:  # pragma: no cover
    from session.storage.s3 import ObjectInfo, Storage

LAP_COMPLETE = "Lap complete"

_STEM = TRAINING_METRICS_NAME.rsplit(".", 1)[0]  # TrainingMetrics
_OUR_METRICS = re.compile(rf"{re.escape(_STEM)}(?:_(\d+))?\.json")
_JOB_METRICS = re.compile(r"([^/]+?)(?:_(\d+))?\.json")  # the console's and DRoA's training/<job>[_<n>].json
_CHECKPOINT = re.compile(r"(\d+)_Step-(\d+)\.ckpt")
_CHECKPOINT_INDEX = re.compile(r"(\d+)_Step-(\d+)\.ckpt\.index")


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint: `name` as the simulator spells it (`13_Step-8383.ckpt`), its iteration number and the
    trainer's total steps when it was saved. `metric` and `time_stamp` come from deepracer_checkpoints.json:
    the mean of its evaluation episodes (progress in percent, unless the run's BEST_MODEL_METRIC says otherwise)."""

    name: str
    number: Optional[int] = None
    steps: Optional[int] = None
    metric: Optional[float] = None
    time_stamp: Optional[float] = None

    @classmethod
    def from_name(cls, name: str, metric: Optional[float] = None,
                  time_stamp: Optional[float] = None) -> "Checkpoint":
        match = _CHECKPOINT.search(name)
        number, steps = (int(match[1]), int(match[2])) if match else (None, None)
        return cls(name=name, number=number, steps=steps, metric=metric, time_stamp=time_stamp)


@dataclass(frozen=True)
class Iteration:
    """The episodes played with checkpoint `number`: training episodes of every worker, and the first worker's
    evaluation of that checkpoint. Means are None when there is nothing to average."""

    number: int
    episodes: int = 0
    mean_reward: Optional[float] = None
    mean_completion: Optional[float] = None  # percent of a lap
    laps: int = 0  # training episodes that completed a lap
    best_lap_s: Optional[float] = None  # fastest completed training lap
    eval_episodes: int = 0
    eval_completion: Optional[float] = None
    eval_laps: int = 0


@dataclass(frozen=True)
class MetricsFile:
    """One worker's metrics file and what became of it: `state` is read, unreadable or missing."""

    key: str
    worker: int  # 1-based, as the containers' deepracer.worker label counts
    state: str
    episodes: int = 0  # training episodes in it
    problem: str = ""


@dataclass(frozen=True)
class TrainingProgress:
    """What a model prefix says about its training, as of `read_at`."""

    model_prefix: str
    metrics_prefix: str
    iterations: tuple[Iteration, ...] = ()
    episodes: int = 0  # training episodes, every worker
    eval_episodes: int = 0
    laps: int = 0  # completed training laps
    episodes_per_iteration: Optional[int] = None  # per worker; known once the first worker finished one
    best_model_metric: Optional[str] = None  # progress | reward | laptime, as the metrics file says
    checkpoints: tuple[Checkpoint, ...] = ()  # the checkpoint files present, oldest first
    last_checkpoint: Optional[Checkpoint] = None  # deepracer_checkpoints.json: the last one evaluated
    best_checkpoint: Optional[Checkpoint] = None
    metrics_files: tuple[MetricsFile, ...] = ()
    notes: tuple[str, ...] = ()  # why some numbers are missing; one line each
    updated: Optional[datetime] = None  # newest change among the objects read
    read_at: Optional[datetime] = None

    @property
    def newest_checkpoint(self) -> Optional[Checkpoint]:
        """The newest checkpoint file: its number is the iteration being played now."""
        return self.checkpoints[-1] if self.checkpoints else None

    @property
    def started(self) -> bool:
        """Whether anything of the training is in storage yet."""
        return bool(self.episodes or self.eval_episodes or self.checkpoints or self.last_checkpoint)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; times as ISO 8601 UTC. `from_dict` reads it back."""
        data = asdict(self)
        for name in ("updated", "read_at"):
            data[name] = iso(getattr(self, name))
        newest = self.newest_checkpoint
        data["newest_checkpoint"] = asdict(newest) if newest else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainingProgress":
        def one(kind: type, value: Any) -> Any:
            if value is None:
                return None
            names = {f.name for f in fields(kind)}
            return kind(**{key: item for key, item in value.items() if key in names})

        return cls(
            model_prefix=data["model_prefix"], metrics_prefix=data["metrics_prefix"],
            iterations=tuple(one(Iteration, item) for item in data.get("iterations") or ()),
            episodes=data.get("episodes", 0), eval_episodes=data.get("eval_episodes", 0), laps=data.get("laps", 0),
            episodes_per_iteration=data.get("episodes_per_iteration"),
            best_model_metric=data.get("best_model_metric"),
            checkpoints=tuple(one(Checkpoint, item) for item in data.get("checkpoints") or ()),
            last_checkpoint=one(Checkpoint, data.get("last_checkpoint")),
            best_checkpoint=one(Checkpoint, data.get("best_checkpoint")),
            metrics_files=tuple(one(MetricsFile, item) for item in data.get("metrics_files") or ()),
            notes=tuple(data.get("notes") or ()),
            updated=_parse_iso(data.get("updated")), read_at=_parse_iso(data.get("read_at")),
        )


# --- pure parsing ------------------------------------------------------------------------------------------------


def metrics_worker(relative_key: str) -> Optional[int]:
    """The 1-based worker whose training metrics a key (relative to the metrics prefix) holds, or None when it is
    not a training metrics file: TrainingMetrics[_<n>].json, or the console's/DRoA's training/<job>[_<n>].json."""
    match = _OUR_METRICS.fullmatch(relative_key)
    if match is None and relative_key.startswith("training/"):
        match = _JOB_METRICS.fullmatch(relative_key[len("training/"):])
    if match is None:
        return None
    suffix = match.groups()[-1]
    return int(suffix) + 1 if suffix else 1


def parse_metrics(data: bytes) -> tuple[list[dict[str, Any]], Optional[str]]:
    """The episode entries of one metrics file and its best_model_metric. Raises ValueError when the bytes are
    not (yet) a whole metrics document."""
    document = json.loads(data)
    entries = document.get("metrics") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError('no "metrics" list')
    metric = document.get("best_model_metric")
    return [entry for entry in entries if isinstance(entry, dict)], metric if isinstance(metric, str) else None


def parse_checkpoints_json(document: Any) -> tuple[Optional[Checkpoint], Optional[Checkpoint]]:
    """(last, best) from deepracer_checkpoints.json; the metric is `avg_eval_metric`, or `avg_comp_pct` in
    older builds and DRfC's upload script."""

    def one(entry: Any) -> Optional[Checkpoint]:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            return None
        metric = entry.get("avg_eval_metric", entry.get("avg_comp_pct"))
        stamp = entry.get("time_stamp")
        return Checkpoint.from_name(entry["name"], _number(metric), _number(stamp))

    if not isinstance(document, dict):
        return None, None
    return one(document.get("last_checkpoint")), one(document.get("best_checkpoint"))


def checkpoint_files(names: Iterable[str]) -> tuple[Checkpoint, ...]:
    """The checkpoints whose index file is among `names` (file names in model/), oldest first."""
    found = []
    for name in names:
        match = _CHECKPOINT_INDEX.fullmatch(name)
        if match:
            found.append(Checkpoint(name=name[:-len(".index")], number=int(match[1]), steps=int(match[2])))
    return tuple(sorted(found, key=lambda checkpoint: (checkpoint.number, checkpoint.steps)))


def group_iterations(metrics: Mapping[int, Sequence[Mapping[str, Any]]]
                     ) -> tuple[tuple[Iteration, ...], Optional[int], tuple[str, ...]]:
    """Episodes of every worker (1-based worker -> its entries in file order) grouped by iteration.

    Returns the iterations (ascending), the episodes each worker plays per iteration (None until the first
    worker has finished one) and notes on episodes that could not be placed.
    """
    buckets: dict[int, _Bucket] = {}
    notes: list[str] = []
    per_iteration = None
    first = metrics.get(1)
    if first is not None:
        per_iteration = _place_first_worker(first, buckets)
    for worker in sorted(w for w in metrics if w != 1):
        entries = [e for e in metrics[worker] if e.get("phase") == "training" and _int(e.get("episode"))]
        if not entries:
            continue
        if per_iteration is None:
            notes.append(f"worker {worker}: {len(entries)} episodes not split into iterations until worker 1 has "
                         "finished its first iteration")
            continue
        for entry in entries:
            number = (_int(entry.get("episode")) - 1) // per_iteration
            buckets.setdefault(number, _Bucket()).add(entry)
    return tuple(bucket.iteration(number) for number, bucket in sorted(buckets.items())), per_iteration, tuple(notes)


def summarise(model_prefix: str, metrics_prefix: str,
              metrics: Mapping[int, Sequence[Mapping[str, Any]]], *,
              model_names: Iterable[str] = (), checkpoints_document: Any = None,
              best_model_metric: Optional[str] = None, metrics_files: Sequence[MetricsFile] = (),
              notes: Sequence[str] = (), updated: Optional[datetime] = None,
              read_at: Optional[datetime] = None) -> TrainingProgress:
    """The TrainingProgress of parsed inputs: metrics entries by 1-based worker, the file names in model/ and
    the parsed deepracer_checkpoints.json (None when absent)."""
    iterations, per_iteration, grouping_notes = group_iterations(metrics)
    training = [e for entries in metrics.values() for e in entries if e.get("phase") == "training"]
    evaluation = [e for entries in metrics.values() for e in entries if e.get("phase") == "evaluation"]
    last, best = parse_checkpoints_json(checkpoints_document)
    return TrainingProgress(
        model_prefix=model_prefix, metrics_prefix=metrics_prefix, iterations=iterations,
        episodes=len(training), eval_episodes=len(evaluation),
        laps=sum(1 for e in training if e.get("episode_status") == LAP_COMPLETE),
        episodes_per_iteration=per_iteration, best_model_metric=best_model_metric,
        checkpoints=checkpoint_files(model_names), last_checkpoint=last, best_checkpoint=best,
        metrics_files=tuple(metrics_files), notes=(*notes, *grouping_notes), updated=updated, read_at=read_at,
    )


# --- the storage edge --------------------------------------------------------------------------------------------


def read_progress(storage: "Storage", model_prefix: str, metrics_prefix: str, *,
                  now: Optional[datetime] = None) -> TrainingProgress:
    """Lists `<model prefix>/model/` and the metrics files, reads deepracer_checkpoints.json and each worker's
    metrics (a few requests at once) and summarises them. A run that has not written anything yet gives an
    empty TrainingProgress; StorageError only for storage failures (no bucket, no access, no network)."""
    from concurrent.futures import ThreadPoolExecutor


    model_prefix, metrics_prefix = model_prefix.strip("/"), metrics_prefix.strip("/")
    model_folder = f"{model_prefix}/model/"
    with ThreadPoolExecutor(max_workers=6, thread_name_prefix="progress") as pool:
        listed_model = pool.submit(lambda: list(storage.list_objects(model_folder)))
        listed_metrics = pool.submit(_metrics_objects, storage, metrics_prefix)
        model_objects = [info for info in listed_model.result() if "/" not in info.key[len(model_folder):]]
        metrics_objects = listed_metrics.result()

        def fetch(key: str) -> Optional[bytes]:
            try:
                return storage.get_bytes(key)
            except ObjectNotFound:  # gone between listing and reading: a prefix being replaced
                return None

        names = [info.key[len(model_folder):] for info in model_objects]
        checkpoints_key = model_folder + CHECKPOINTS_JSON
        keys = [info.key for info in metrics_objects.values()]
        if CHECKPOINTS_JSON in names:
            keys.append(checkpoints_key)
        fetched = dict(zip(keys, pool.map(fetch, keys)))

    notes: list[str] = []
    checkpoints_document = None
    checkpoints_data = fetched.get(checkpoints_key)
    if checkpoints_data is not None:
        try:
            checkpoints_document = json.loads(checkpoints_data)
        except (ValueError, UnicodeDecodeError) as error:
            notes.append(f"{checkpoints_key} is not yet readable ({_reason(error)}); last and best checkpoint "
                         "unknown for now")
    metrics: dict[int, list[dict[str, Any]]] = {}
    files: list[MetricsFile] = []
    best_model_metric = None
    for worker, info in sorted(metrics_objects.items()):
        data = fetched.get(info.key)
        if data is None:
            files.append(MetricsFile(info.key, worker, "missing", problem="deleted while being read"))
            continue
        try:
            entries, metric = parse_metrics(data)
        except (ValueError, UnicodeDecodeError) as error:
            problem = f"not yet readable ({_reason(error)}); the simulator rewrites it after every episode"
            files.append(MetricsFile(info.key, worker, "unreadable", problem=problem))
            notes.append(f"{info.key} is {problem}")
            continue
        metrics[worker] = entries
        best_model_metric = best_model_metric or metric
        files.append(MetricsFile(info.key, worker, "read",
                                 episodes=sum(1 for e in entries if e.get("phase") == "training")))
    if not metrics_objects:
        notes.append(f"no training metrics under {storage.url(metrics_prefix + '/')} yet")
    stamps = [info.last_modified for info in (*model_objects, *metrics_objects.values()) if info.last_modified]
    return summarise(model_prefix, metrics_prefix, metrics, model_names=names,
                     checkpoints_document=checkpoints_document, best_model_metric=best_model_metric,
                     metrics_files=files, notes=notes, updated=max(stamps) if stamps else None,
                     read_at=now or datetime.now(timezone.utc))


def _metrics_objects(storage: "Storage", metrics_prefix: str) -> dict[int, "ObjectInfo"]:
    """The training metrics file of each worker. Only names starting with TrainingMetrics are listed (the metrics
    prefix may be the model prefix itself); the console's/DRoA's training/ folder only when those are absent,
    and there the newest job's files."""
    folder = f"{metrics_prefix}/"
    ours = {}
    for info in storage.list_objects(metrics_prefix, match=_STEM):
        worker = metrics_worker(info.key[len(folder):])
        if worker is not None:
            ours[worker] = info
    if ours:
        return ours
    jobs: dict[str, dict[int, "ObjectInfo"]] = {}
    for info in storage.list_objects(f"{folder}training/"):
        relative = info.key[len(folder):]
        worker = metrics_worker(relative)
        match = _JOB_METRICS.fullmatch(relative[len("training/"):])
        if worker is not None and match is not None:
            jobs.setdefault(match[1], {})[worker] = info
    if not jobs:
        return {}
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    newest = max(jobs.values(), key=lambda files: max(info.last_modified or epoch for info in files.values()))
    return newest


# --- helpers -----------------------------------------------------------------------------------------------------


class _Bucket:
    """Running sums for one iteration."""

    def __init__(self) -> None:
        self.training: list[Mapping[str, Any]] = []
        self.evaluation: list[Mapping[str, Any]] = []

    def add(self, entry: Mapping[str, Any]) -> None:
        (self.evaluation if entry.get("phase") == "evaluation" else self.training).append(entry)

    def iteration(self, number: int) -> Iteration:
        laps = [e for e in self.training if e.get("episode_status") == LAP_COMPLETE]
        lap_times = [t / 1000 for t in (_number(e.get("elapsed_time_in_milliseconds")) for e in laps)
                     if t is not None]
        return Iteration(
            number=number, episodes=len(self.training),
            mean_reward=_mean(e.get("reward_score") for e in self.training),
            mean_completion=_mean(e.get("completion_percentage") for e in self.training),
            laps=len(laps), best_lap_s=min(lap_times) if lap_times else None,
            eval_episodes=len(self.evaluation),
            eval_completion=_mean(e.get("completion_percentage") for e in self.evaluation),
            eval_laps=sum(1 for e in self.evaluation if e.get("episode_status") == LAP_COMPLETE),
        )


def _place_first_worker(entries: Sequence[Mapping[str, Any]], buckets: dict[int, _Bucket]) -> Optional[int]:
    """The first worker's entries into iterations: a training episode starts the next iteration when it follows
    that worker's evaluation episodes or its trial counter starts again; evaluation entries belong to the
    iteration they follow. Returns the training episodes of its first finished iteration (None while it is
    still in the first)."""
    number, previous_trial, after_evaluation, count, per_iteration = 0, None, False, 0, None
    for entry in entries:
        phase = entry.get("phase")
        if phase == "training":
            trial = _int(entry.get("trial"))
            if count and (after_evaluation or (previous_trial is not None and trial <= previous_trial)):
                number += 1
                per_iteration = per_iteration or count
                count = 0
            previous_trial, after_evaluation = trial, False
            count += 1
        elif phase == "evaluation":
            after_evaluation = True
        else:
            continue
        buckets.setdefault(number, _Bucket()).add(entry)
    return per_iteration


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _mean(values: Iterable[Any]) -> Optional[float]:
    numbers = [number for number in (_number(value) for value in values) if number is not None]
    return sum(numbers) / len(numbers) if numbers else None


def _reason(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at byte {error.pos}"
    return str(error) or type(error).__name__


def _parse_iso(text: Optional[str]) -> Optional[datetime]:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
