"""The models in a bucket: which prefixes hold one, and what each holds (`models list`, `models show`).

A model is a prefix whose `model/` folder holds TF checkpoints (`<n>_Step-<steps>.ckpt.index` ...) or the
simulator's `deepracer_checkpoints.json` (FORMATS.md §4.3). Three layouts are recognised (§4.4):

- DRfC and this tool: everything under one prefix (`rl-1/model/`, `rl-1/ip/`, `rl-1/metrics/`,
  `rl-1/reward_function.py`, `rl-1/training_params.yaml`);
- the console's service bucket: `<root>/sagemaker-robomaker-artifacts/` is the simulator's prefix, while
  `model_metadata.json`, `reward_function.py` and `metrics/` sit at `<root>`;
- DeepRacer on AWS: the same with `<root>/sagemaker-artifacts/`.

`ModelLocation.prefix` is always the simulator's prefix (the one holding `model/`; a pretrained base is named by
it), `root` the folder the model's other files live in (the same prefix for DRfC).

Listing looks for `model/` folders with delimiter listings, level by level, a few at a time, and never lists
`custom_files/`, `hosts/` or `bootstrap/`; each model found is then listed once in full (its size and newest
change) and its progress read with `session.run.progress.read_progress`.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Optional, Sequence, TypeVar, Union

from session.core.errors import DeepracerError
from session.core.text import iso
from session.run.progress import (
    Checkpoint,
    Iteration,
    TrainingProgress,
    checkpoint_files,
    parse_checkpoints_json,
    read_progress,
)
from session.storage.layout import CHECKPOINTS_JSON, COACH_CHECKPOINT
from session.storage.s3 import StorageError, run_parallel

if TYPE_CHECKING:  # pragma: no cover
    from session.storage.s3 import ObjectInfo, Storage

ARTIFACT_FOLDERS = ("sagemaker-artifacts", "sagemaker-robomaker-artifacts")  # DRoA, console service bucket
SKIPPED_FOLDERS = ("custom_files", "hosts", "bootstrap")  # the bucket's other top-level folders
MAX_DEPTH = 5  # folders down to a model prefix: <profile>/models/<id>/sagemaker-artifacts is 4
MODEL_METADATA = "model_metadata.json"
HYPERPARAMETERS = "ip/hyperparameters.json"
REWARD_FUNCTION = "reward_function.py"
TRAINING_PARAMS = "training_params.yaml"
_PARALLEL = 8

CheckpointChoice = Union[str, int]  # "last", "best" or a checkpoint number
_T = TypeVar("_T")
_R = TypeVar("_R")


class ModelError(DeepracerError):
    """A model is missing, incomplete or cannot go where it was asked to; `str()` is one line for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


# --- where a model's files are -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelLocation:
    """`prefix`: the simulator's prefix (holds model/ and ip/); `root`: where the model's own files are."""

    prefix: str
    root: str

    @property
    def layout(self) -> str:
        """drfc, console or droa."""
        if self.prefix == self.root:
            return "drfc"
        return "droa" if self.prefix.endswith("/sagemaker-artifacts") else "console"

    def candidates(self, role: str) -> tuple[str, ...]:
        """Keys, most specific first, where a file of `role` (metadata, reward, hyperparameters) may be."""
        keys: tuple[str, ...]
        if role == "metadata":
            keys = (f"{self.prefix}/model/{MODEL_METADATA}", f"{self.prefix}/{MODEL_METADATA}",
                    f"{self.root}/{MODEL_METADATA}")
        elif role == "reward":
            keys = (f"{self.prefix}/{REWARD_FUNCTION}", f"{self.root}/{REWARD_FUNCTION}")
        elif role == "hyperparameters":
            keys = (f"{self.prefix}/{HYPERPARAMETERS}",)
        else:
            raise ValueError(role)
        return tuple(dict.fromkeys(keys))


def location_of(prefix: str) -> ModelLocation:
    """The location a simulator prefix implies (no storage access): an artifacts folder's parent is the root."""
    prefix = prefix.strip("/")
    parent, _, name = prefix.rpartition("/")
    if parent and name in ARTIFACT_FOLDERS:
        return ModelLocation(prefix, parent)
    return ModelLocation(prefix, prefix)


def locate(storage: "Storage", prefix: str) -> ModelLocation:
    """The model at `prefix`: the prefix itself, or its artifacts folder when `prefix` is a console/DRoA model
    root. ModelError when neither holds anything in model/."""
    prefix = prefix.strip("/")
    if not prefix:
        raise ModelError("a model prefix is needed, e.g. rl-deepracer-sagemaker (see `deepracer models list`)")
    if storage.prefix_has_objects(f"{prefix}/model/"):
        return location_of(prefix)
    for folder in ARTIFACT_FOLDERS:
        if storage.prefix_has_objects(f"{prefix}/{folder}/model/"):
            return ModelLocation(f"{prefix}/{folder}", prefix)
    what = "holds nothing" if not storage.prefix_has_objects(f"{prefix}/") else "has no model/ folder"
    raise ModelError(f"no model at {storage.url(prefix + '/')}: it {what}; `deepracer models list` shows the "
                     "models in the bucket")


def inventory(storage: "Storage", location: ModelLocation) -> dict[str, "ObjectInfo"]:
    """Every object under the model's root (which contains its prefix), by key."""
    return {info.key: info for info in storage.list_objects(location.root) if not info.key.endswith("/")}


def first_present(keys: Iterable[str], objects: Mapping[str, Any]) -> Optional[str]:
    return next((key for key in keys if key in objects), None)


def model_names(location: ModelLocation, objects: Iterable[str]) -> list[str]:
    """File names directly in model/."""
    folder = f"{location.prefix}/model/"
    return [key[len(folder):] for key in objects if key.startswith(folder) and "/" not in key[len(folder):]]


def params_key(location: ModelLocation, objects: Mapping[str, Any]) -> Optional[str]:
    """The training params YAML under the prefix: training_params.yaml, else worker 1's of a multi-config run
    (training_params_1.yaml), else the first other training_params*.yaml."""
    named = [f"{location.prefix}/{TRAINING_PARAMS}", f"{location.prefix}/training_params_1.yaml"]
    found = first_present(named, objects)
    if found:
        return found
    others = sorted(key for key in objects if posixpath.dirname(key) == location.prefix
                    and posixpath.basename(key).startswith("training_params") and key.endswith(".yaml"))
    return others[0] if others else None


def metrics_prefix(storage: "Storage", location: ModelLocation, params: Optional[Mapping[str, Any]]) -> str:
    """Where the training metrics are: the folder of the params' METRICS_S3_OBJECT_KEY when it is in this bucket
    (without the console's/DRoA's `training/` level), else `<root>/metrics`."""
    if params:
        key = yaml_scalar(params.get("METRICS_S3_OBJECT_KEY"))
        bucket = yaml_scalar(params.get("METRICS_S3_BUCKET"))
        if isinstance(key, str) and "/" in key and bucket in (None, storage.bucket):
            folder = posixpath.dirname(key.strip("/"))
            return folder[:-len("/training")] if folder.endswith("/training") else folder
    return f"{location.root}/metrics"


# --- choosing a checkpoint ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointFiles:
    """A checkpoint and the keys of its files in model/: the TF files and, if kept, its frozen graph."""

    checkpoint: Checkpoint
    keys: tuple[str, ...]  # .index, .meta, .data-* (sorted)
    frozen_graph: Optional[str]  # model/model_<n>.pb


def complete_checkpoints(location: ModelLocation, objects: Iterable[str]) -> dict[str, CheckpointFiles]:
    """Checkpoints in model/ with all their TF files (index, meta and at least one data shard), by name."""
    names = model_names(location, objects)
    present = set(names)
    folder = f"{location.prefix}/model/"
    found = {}
    for checkpoint in checkpoint_files(names):
        data = sorted(n for n in names if n.startswith(f"{checkpoint.name}.data-"))
        if f"{checkpoint.name}.meta" not in present or not data:
            continue
        keys = tuple(folder + n for n in sorted([f"{checkpoint.name}.index", f"{checkpoint.name}.meta", *data]))
        graph = f"model_{checkpoint.number}.pb"
        found[checkpoint.name] = CheckpointFiles(checkpoint, keys, folder + graph if graph in present else None)
    return found


def parse_choice(text: Union[str, int]) -> CheckpointChoice:
    """`last`, `best` or a checkpoint number, as typed on the command line."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    value = str(text).strip().lower()
    if value in ("last", "best"):
        return value
    if value.isdigit():
        return int(value)
    raise ModelError(f"--checkpoint: expected last, best or a checkpoint number, got '{text}'")


def choose_checkpoint(location: ModelLocation, objects: Mapping[str, Any], choice: CheckpointChoice, *,
                      checkpoints_document: Any = None, coach_checkpoint: Optional[str] = None,
                      url: Callable[[str], str] = lambda key: key) -> CheckpointFiles:
    """The checkpoint `choice` names, with its files. `last`: deepracer_checkpoints.json's last checkpoint, else
    the one .coach_checkpoint names, else the newest complete one; `best`: the json's best checkpoint; a number:
    the checkpoint of that iteration. ModelError when it is missing or incomplete."""
    choice = parse_choice(choice)
    complete = complete_checkpoints(location, objects)
    model_url = url(f"{location.prefix}/model/")
    last, best = parse_checkpoints_json(checkpoints_document)
    if isinstance(choice, int):
        matches = [files for files in complete.values() if files.checkpoint.number == choice]
        if not matches:
            kept = ", ".join(str(f.checkpoint.number) for f in complete.values()) or "none"
            raise ModelError(f"checkpoint {choice} is not in {model_url} (complete checkpoints there: {kept}; the "
                             "trainer keeps only the newest few and the best)")
        return max(matches, key=lambda files: files.checkpoint.steps or 0)
    if choice == "best":
        if best is None:
            raise ModelError(f"{model_url}{CHECKPOINTS_JSON} names no best checkpoint (the simulator writes it "
                             "after evaluating the first iteration); use --checkpoint last or a number")
        named, why = best, f"named best in {CHECKPOINTS_JSON}"
    elif last is not None:
        named, why = last, f"named last in {CHECKPOINTS_JSON}"
    elif coach_checkpoint:
        named, why = Checkpoint.from_name(coach_checkpoint.strip()), f"named in {COACH_CHECKPOINT}"
    elif complete:
        newest = max(complete.values(), key=lambda f: (f.checkpoint.number or 0, f.checkpoint.steps or 0))
        return newest
    else:
        raise ModelError(f"{model_url} holds no complete checkpoint (.index, .meta and .data files)")
    if named.name not in complete:
        raise ModelError(f"checkpoint {named.name} ({why}) is not complete in {model_url}: expected "
                         f"{named.name}.index, .meta and .data-* files")
    files = complete[named.name]
    return CheckpointFiles(Checkpoint(named.name, files.checkpoint.number, files.checkpoint.steps, named.metric,
                                      named.time_stamp), files.keys, files.frozen_graph)


# --- summaries ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankedCheckpoint:
    """The checkpoint that did best by one measure: its iteration number, the value, and its name when its files
    are still in model/ (None: the trainer has pruned it)."""

    number: int
    value: float
    name: Optional[str] = None


@dataclass(frozen=True)
class ModelSummary:
    """One model in a bucket, as `models list` shows it.

    `last`/`best` come from deepracer_checkpoints.json (the simulator's choice by the run's BEST_MODEL_METRIC;
    `last` falls back to the newest checkpoint file). From the training metrics, per iteration (= the checkpoint
    that played it): `best_by_progress` is the highest mean completion of the evaluation episodes between
    iterations (what the simulator compares with BEST_MODEL_METRIC=progress), `best_by_reward` the highest mean
    reward of the training episodes, `best_by_lap_time` the fastest completed training lap (seconds); ties go to
    the later checkpoint, as the simulator's do. The newest iteration is ranked only once it has been evaluated.
    """

    prefix: str
    root: str
    url: str
    layout: str
    iterations: int
    episodes: int
    checkpoints: tuple[Checkpoint, ...]
    last: Optional[Checkpoint]
    best: Optional[Checkpoint]
    best_model_metric: Optional[str]
    best_by_progress: Optional[RankedCheckpoint]
    best_by_reward: Optional[RankedCheckpoint]
    best_by_lap_time: Optional[RankedCheckpoint]
    size: int  # bytes under the root (its simtrace and videos included)
    objects: int
    updated: Optional[datetime]  # the newest object
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["updated"] = iso(self.updated)
        return data


@dataclass(frozen=True)
class CheckpointRow:
    """A checkpoint in model/ for `models show`: whether it is complete, has its frozen graph, is last/best."""

    checkpoint: Checkpoint
    complete: bool
    frozen_graph: bool
    last: bool
    best: bool


@dataclass(frozen=True)
class ModelDetails:
    """What `models show` prints: the model's summary, its metadata, hyperparameters, reward-function hash and
    the training params that matter to a reader. Missing files are None, with a note saying so."""

    summary: ModelSummary
    metadata: Optional[dict[str, Any]]
    metadata_key: Optional[str]
    hyperparameters: Optional[dict[str, Any]]
    reward_function_key: Optional[str]
    reward_function_sha256: Optional[str]
    training_params_key: Optional[str]
    training: dict[str, Any]  # WORLD_NAME, RACE_TYPE, ... as the YAML has them
    checkpoints: tuple[CheckpointRow, ...]
    notes: tuple[str, ...] = ()

    @property
    def action_space_type(self) -> Optional[str]:
        if self.metadata is None:
            return None
        return str(self.metadata.get("action_space_type") or "discrete").lower()

    @property
    def action_space(self) -> Any:
        return None if self.metadata is None else self.metadata.get("action_space")

    @property
    def sensors(self) -> list[str]:
        sensor = (self.metadata or {}).get("sensor")
        return [str(s) for s in sensor] if isinstance(sensor, list) else ([str(sensor)] if sensor else [])

    @property
    def neural_network(self) -> Optional[str]:
        if self.metadata is None:
            return None
        return str(self.metadata.get("neural_network") or "DEEP_CONVOLUTIONAL_NETWORK_SHALLOW")

    @property
    def training_algorithm(self) -> Optional[str]:
        if self.metadata is None:
            return None
        return str(self.metadata.get("training_algorithm") or "clipped_ppo").lower()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = self.summary.to_dict()
        data.update(action_space_type=self.action_space_type, sensors=self.sensors,
                    neural_network=self.neural_network, training_algorithm=self.training_algorithm)
        return data


TRAINING_KEYS = ("WORLD_NAME", "TRACK_DIRECTION_CLOCKWISE", "RACE_TYPE", "NUMBER_OF_OBSTACLES", "OBJECT_POSITIONS",
                 "NUMBER_OF_BOT_CARS", "BOT_CAR_SPEED", "BODY_SHELL_TYPE", "CAR_COLOR", "CAR_NAME", "RACER_NAME",
                 "BEST_MODEL_METRIC", "NUM_WORKERS", "MIN_EVAL_TRIALS", "SAGEMAKER_SHARED_S3_BUCKET",
                 "SAGEMAKER_SHARED_S3_PREFIX")


def rank(iterations: Sequence[Iteration], checkpoints: Mapping[int, str], value: Callable[[Iteration], Any],
         *, lowest: bool = False) -> Optional[RankedCheckpoint]:
    """The iteration with the highest (or lowest) value; the latest among equals, as the simulator moves its best
    checkpoint on a tie (DRoA's sample log: 12 -> 13, both at 100 % progress). `checkpoints`: number -> name of
    the checkpoints whose files are still kept."""
    scored = [(float(v), it.number) for it in iterations if (v := value(it)) is not None]
    if not scored:
        return None
    best_value, number = max(scored, key=lambda s: (-s[0] if lowest else s[0], s[1]))
    return RankedCheckpoint(number, best_value, checkpoints.get(number))


def summarise_model(storage: "Storage", location: ModelLocation, objects: Mapping[str, "ObjectInfo"],
                    progress: TrainingProgress, notes: Sequence[str] = ()) -> ModelSummary:
    """A ModelSummary from the model's objects and its progress (pure apart from `storage.url`)."""
    kept = {files.checkpoint.number: name
            for name, files in complete_checkpoints(location, objects).items() if files.checkpoint.number is not None}
    checkpoints = progress.checkpoints
    # The newest iteration counts once its evaluation has run: before that it is still being played (or was cut
    # short), and a few episodes would rank it by luck.
    played = [it for n, it in enumerate(progress.iterations)
              if n < len(progress.iterations) - 1 or it.eval_episodes]
    iterations = max(len(progress.iterations), (checkpoints[-1].number or 0) + 1 if checkpoints else 0)
    last = progress.last_checkpoint or progress.newest_checkpoint
    stamps = [info.last_modified for info in objects.values() if info.last_modified]
    return ModelSummary(
        prefix=location.prefix, root=location.root, url=storage.url(location.prefix + "/"), layout=location.layout,
        iterations=iterations, episodes=progress.episodes, checkpoints=checkpoints, last=last,
        best=progress.best_checkpoint, best_model_metric=progress.best_model_metric,
        best_by_progress=rank(played, kept, lambda it: it.eval_completion if it.eval_episodes else None),
        best_by_reward=rank(played, kept, lambda it: it.mean_reward),
        best_by_lap_time=rank(played, kept, lambda it: it.best_lap_s, lowest=True),
        size=sum(info.size for info in objects.values()), objects=len(objects),
        updated=max(stamps) if stamps else None, notes=(*notes, *progress.notes),
    )


def _read_params(storage: "Storage", key: Optional[str], notes: list[str]) -> Optional[dict[str, Any]]:
    if key is None:
        return None
    try:
        params = storage.get_yaml(key)
    except StorageError as error:
        notes.append(str(error))
        return None
    if not isinstance(params, dict):
        notes.append(f"{storage.url(key)} is not a YAML mapping of keys to values")
        return None
    return params


def _summary(storage: "Storage", location: ModelLocation,
             objects: Optional[Mapping[str, "ObjectInfo"]] = None) -> tuple[ModelSummary, Mapping[str, "ObjectInfo"],
                                                                            Optional[dict[str, Any]]]:
    objects = inventory(storage, location) if objects is None else objects
    notes: list[str] = []
    params = _read_params(storage, params_key(location, objects), notes)
    progress = read_progress(storage, location.prefix, metrics_prefix(storage, location, params))
    return summarise_model(storage, location, objects, progress, notes), objects, params


def is_model(location: ModelLocation, objects: Iterable[str]) -> bool:
    names = model_names(location, objects)
    return CHECKPOINTS_JSON in names or bool(checkpoint_files(names))


def find_model_prefixes(storage: "Storage", *, skip: Sequence[str] = SKIPPED_FOLDERS,
                        max_depth: int = MAX_DEPTH) -> list[str]:
    """Prefixes with a model/ folder, found with delimiter listings level by level (a model's own sub-folders
    are not descended into). Sorted."""
    found: list[str] = []
    frontier = [p for p in storage.list_prefixes("") if p not in skip]
    for _ in range(max_depth):
        if not frontier:
            break
        deeper: list[str] = []
        for parent, children in zip(frontier, in_parallel(storage.list_prefixes, frontier)):
            if f"{parent}/model" in children:
                found.append(parent)
            else:
                deeper.extend(children)
        frontier = deeper
    return sorted(found)


def list_models(storage: "Storage", *, skip: Sequence[str] = SKIPPED_FOLDERS) -> list[ModelSummary]:
    """Every model in the bucket, sorted by prefix. A prefix whose model/ holds neither checkpoints nor
    deepracer_checkpoints.json (a run that has not saved one yet) is left out."""

    def one(prefix: str) -> Optional[ModelSummary]:
        location = location_of(prefix)
        if not is_model(location, (info.key for info in storage.list_objects(f"{prefix}/model/"))):
            return None  # before listing all of it: the prefix of a run that saved nothing may be large
        return _summary(storage, location)[0]

    return [summary for summary in in_parallel(one, find_model_prefixes(storage, skip=skip)) if summary is not None]


def show_model(storage: "Storage", prefix: str) -> ModelDetails:
    """Everything `models show` prints about the model at `prefix` (its simulator prefix or its root)."""

    location = locate(storage, prefix)
    summary, objects, params = _summary(storage, location)
    notes: list[str] = []

    def read_json(role: str, what: str) -> tuple[Optional[dict[str, Any]], Optional[str]]:
        key = first_present(location.candidates(role), objects)
        if key is None:
            notes.append(f"no {what} at {storage.url(location.candidates(role)[0])}")
            return None, None
        try:
            value = storage.get_json(key)
        except StorageError as error:
            notes.append(str(error))
            return None, key
        if not isinstance(value, dict):
            notes.append(f"{storage.url(key)} is not a JSON object")
            return None, key
        return value, key

    metadata, metadata_key = read_json("metadata", MODEL_METADATA)
    hyperparameters, _ = read_json("hyperparameters", "hyperparameters")
    reward_key = first_present(location.candidates("reward"), objects)
    reward_sha256 = None
    if reward_key is None:
        notes.append(f"no reward function at {storage.url(location.candidates('reward')[0])}")
    else:
        reward_sha256 = hashlib.sha256(storage.get_bytes(reward_key)).hexdigest()
    training_key = params_key(location, objects)
    if training_key is None:
        notes.append(f"no training_params*.yaml in {storage.url(location.prefix + '/')}")
    training = {key: params[key] for key in TRAINING_KEYS if params and key in params}

    names = set(model_names(location, objects))
    complete = complete_checkpoints(location, objects)
    rows = tuple(CheckpointRow(
        checkpoint=checkpoint, complete=checkpoint.name in complete,
        frozen_graph=f"model_{checkpoint.number}.pb" in names,
        last=summary.last is not None and summary.last.name == checkpoint.name,
        best=summary.best is not None and summary.best.name == checkpoint.name,
    ) for checkpoint in summary.checkpoints)
    return ModelDetails(summary=summary, metadata=metadata, metadata_key=metadata_key,
                        hyperparameters=hyperparameters, reward_function_key=reward_key,
                        reward_function_sha256=reward_sha256, training_params_key=training_key, training=training,
                        checkpoints=rows, notes=tuple(notes))


# --- helpers -----------------------------------------------------------------------------------------------------


def in_parallel(work: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """`work` over `items` on a few threads, results in order; the first error is raised."""
    return run_parallel(work, items, _PARALLEL)


def yaml_scalar(value: Any) -> Any:
    """A YAML value the simulator may have turned into a one-element list, as the single value."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def coach_checkpoint_text(storage: "Storage", location: ModelLocation, objects: Mapping[str, Any]) -> Optional[str]:
    key = f"{location.prefix}/model/{COACH_CHECKPOINT}"
    return storage.get_text(key).strip() if key in objects else None


def checkpoints_document(storage: "Storage", location: ModelLocation, objects: Mapping[str, Any]) -> Any:
    """deepracer_checkpoints.json parsed, None when absent; ModelError when it is not JSON."""

    key = f"{location.prefix}/model/{CHECKPOINTS_JSON}"
    if key not in objects:
        return None
    try:
        return storage.get_json(key)
    except StorageError as error:
        if error.code == "NotJson":
            raise ModelError(f"{error}; the trainer may be rewriting it, try again") from None
        raise


__all__ = [
    "ARTIFACT_FOLDERS", "CheckpointChoice", "CheckpointFiles", "CheckpointRow", "ModelDetails", "ModelError",
    "ModelLocation", "ModelSummary", "RankedCheckpoint", "SKIPPED_FOLDERS", "checkpoints_document",
    "choose_checkpoint", "coach_checkpoint_text", "complete_checkpoints", "find_model_prefixes", "inventory",
    "is_model", "list_models", "locate", "location_of", "metrics_prefix", "params_key", "parse_choice", "rank",
    "show_model", "summarise_model",
]
