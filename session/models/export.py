"""A trained model packaged for somewhere else: another bucket or prefix, a folder, a physical car, or (the other
way round) a model from elsewhere brought in as a pretrained base.

`export_model` writes one layout for every target, the one DeepRacer on AWS imports (FORMATS.md §4.5) and DRfC's
upload script produces (DRFC.md §3.9), at the folder's root:

    model_metadata.json  reward_function.py  training_params.yaml  ip/hyperparameters.json  metrics/...
    model/<n>_Step-<steps>.ckpt.{index,meta,data-...}  model/model_<n>.pb  model/model_metadata.json
    model/.coach_checkpoint  model/deepracer_checkpoints.json

with only the chosen checkpoint, and `.coach_checkpoint` and `deepracer_checkpoints.json` naming it as both last
and best. `training_params.yaml` names the target's bucket and prefix (DRfC's script leaves placeholders there);
a folder with no stated S3 location gets no bucket/prefix keys rather than wrong ones.

Every file is staged locally first (downloads are checked against the sha256 the storage layer keeps with each
object it writes), then written, then checked at the target: the SHA-256 of what was read against what arrived
(a folder: re-read; S3: the server's MD5 ETag of the bytes it stored, else a re-read). The pointer files are
written last, so an export that fails midway leaves no folder that claims to be complete.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import io
import json
import os
import posixpath
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence, Union

from session.checks.custom_files import validate_model_metadata
from session.checks.droa_rules import check_model_metadata as droa_model_rules
from session.core.problems import Problem
from session.models.library import (
    COACH_CHECKPOINT,
    HYPERPARAMETERS,
    MODEL_METADATA,
    REWARD_FUNCTION,
    TRAINING_PARAMS,
    CheckpointChoice,
    CheckpointFiles,
    ModelError,
    ModelLocation,
    checkpoints_document,
    choose_checkpoint,
    coach_checkpoint_text,
    complete_checkpoints,
    first_present,
    in_parallel,
    inventory,
    locate,
    metrics_prefix,
    model_names,
    params_key,
    parse_choice,
    yaml_scalar,
)
from session.run.progress import Checkpoint, parse_checkpoints_json, read_progress
from session.run.training_params import dump, training_params
from session.storage.layout import CHECKPOINTS_JSON, HANDOFF_MARKERS
from session.storage.s3 import PART_SIZE, ChecksumMismatch, Storage, storage_error

if TYPE_CHECKING:  # pragma: no cover
    from session.core.config import RunConfig, SystemConfig

DROA_MAX_BYTES = 1024 ** 3  # DRoA's import takes folders up to 1 GB
DROA_REQUIRED = (MODEL_METADATA, REWARD_FUNCTION, TRAINING_PARAMS, HYPERPARAMETERS)
CAR_METADATA, CAR_GRAPH = "model_metadata.json", "agent/model.pb"
# Keys of training_params.yaml that say where the model lives; rewritten for the target.
LOCATION_KEYS = ("SAGEMAKER_SHARED_S3_BUCKET", "SAGEMAKER_SHARED_S3_PREFIX", "METRICS_S3_BUCKET",
                 "METRICS_S3_OBJECT_KEY", "MODEL_METADATA_FILE_S3_KEY", "REWARD_FILE_S3_KEY", "SIMTRACE_S3_BUCKET",
                 "SIMTRACE_S3_PREFIX", "MP4_S3_BUCKET", "MP4_S3_OBJECT_PREFIX", "S3_ENDPOINT_URL")
_DIRECTION_SUFFIXES = {"_cw": True, "_ccw": False}

TargetSpec = Union["Target", Path, str]


# --- targets ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Staged:
    """A file staged for writing, with the digests of its bytes."""

    path: Path
    size: int
    sha256: str
    md5: str
    multipart_etag: str  # the ETag S3 gives a PART_SIZE multipart upload of these bytes


def stage_digest(path: Path) -> Staged:
    sha256, md5, parts, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), [], 0
    with path.open("rb") as stream:
        while chunk := stream.read(PART_SIZE):
            sha256.update(chunk)
            md5.update(chunk)
            parts.append(hashlib.md5(chunk, usedforsecurity=False).digest())
            size += len(chunk)
    multipart = f"{hashlib.md5(b''.join(parts), usedforsecurity=False).hexdigest()}-{len(parts)}" if parts else ""
    return Staged(path, size, sha256.hexdigest(), md5.hexdigest(), multipart)


class Target:
    """Where an export goes. `url` names it to the user; `location` is the (bucket, prefix) its
    training_params.yaml should name, None when unknown (a folder)."""

    url: str = ""
    location: Optional[tuple[str, str]] = None

    def existing(self) -> dict[str, int]:
        """Files already there: relative path -> size."""
        raise NotImplementedError

    def write(self, rel: str, staged: Path) -> None:
        raise NotImplementedError

    def verify(self, rel: str, staged: Staged, origin: str) -> str:
        """Check that `rel` holds the staged bytes; returns how (`sha256` re-read or `etag`); ChecksumMismatch
        otherwise. `origin` names where the bytes were read from."""
        raise NotImplementedError

    def read(self, rel: str) -> bytes:
        raise NotImplementedError

    def keeps_endpoint(self, source: Storage) -> bool:
        """Whether the source's container-side S3 endpoint still applies at the target."""
        return False

    def overlaps(self, source: Storage, root: str) -> bool:
        return False

    def close(self) -> None:
        pass

    def _mismatch(self, rel: str, origin: str, arrived: str, expected: str) -> ChecksumMismatch:
        return ChecksumMismatch(f"{self._name(rel)} arrived different from what was read from {origin}: SHA-256 "
                                f"{arrived[:12]}… instead of {expected[:12]}…; the export is incomplete, run it "
                                "again with --overwrite", code="ChecksumMismatch")

    def _name(self, rel: str) -> str:
        return f"{self.url.rstrip('/')}/{rel}"


class S3Target(Target):
    """A prefix in a bucket (`storage`'s). `owned`: close the storage with the target."""

    def __init__(self, storage: Storage, prefix: str, *, owned: bool = False) -> None:
        prefix = prefix.strip("/")
        if not prefix:
            raise ModelError(f"export to {storage.url()}: name a prefix inside the bucket, e.g. "
                             f"{storage.url('my-model')}")
        self.storage, self.prefix, self._owned = storage, prefix, owned
        self.url = storage.url(prefix + "/")
        self.location = (storage.bucket, prefix)

    def existing(self) -> dict[str, int]:
        folder = self.prefix + "/"
        return {info.key[len(folder):]: info.size for info in self.storage.list_objects(self.prefix)}

    def write(self, rel: str, staged: Path) -> None:
        self.storage.upload_file(staged, f"{self.prefix}/{rel}")

    def verify(self, rel: str, staged: Staged, origin: str) -> str:
        key = f"{self.prefix}/{rel}"
        info = self.storage.stat(key)
        if info.size != staged.size:
            raise ChecksumMismatch(f"{self._name(rel)} arrived with {info.size} bytes instead of {staged.size} read "
                                   f"from {origin}; the export is incomplete, run it again with --overwrite",
                                   code="ChecksumMismatch")
        if info.etag and info.etag in (staged.md5, staged.multipart_etag):
            return "etag"  # the server's MD5 of the bytes it stored
        # An ETag that is not an MD5 we can recompute (SSE-KMS, other servers) or that differs: read it back.
        arrived = _stream_sha256(self.storage, key)
        if arrived != staged.sha256:
            raise self._mismatch(rel, origin, arrived, staged.sha256)
        return "sha256"

    def read(self, rel: str) -> bytes:
        return self.storage.get_bytes(f"{self.prefix}/{rel}")

    def keeps_endpoint(self, source: Storage) -> bool:
        return source.endpoint_url is not None and source.endpoint_url == self.storage.endpoint_url

    def overlaps(self, source: Storage, root: str) -> bool:
        same_server = (source.endpoint_url == self.storage.endpoint_url and source.bucket == self.storage.bucket)
        a, b = root.strip("/") + "/", self.prefix + "/"
        return same_server and (a.startswith(b) or b.startswith(a))

    def close(self) -> None:
        if self._owned:
            self.storage.close()


class DirTarget(Target):
    """A local folder. `location`: the s3://bucket/prefix the folder will be uploaded to, if known, for the
    training params to name."""

    def __init__(self, path: Union[str, Path], location: Optional[str] = None) -> None:
        self.path = Path(path).expanduser()
        self.url = str(self.path)
        self.location = parse_s3_url(location) if location else None
        if self.location is not None and not self.location[1]:
            raise ModelError(f"--as {location}: name a prefix inside the bucket")

    def existing(self) -> dict[str, int]:
        if not self.path.exists():
            return {}
        if not self.path.is_dir():
            raise ModelError(f"{self.path} is a file, not a folder to export into")
        found = {}
        for directory, _dirs, files in os.walk(self.path):
            for name in files:
                path = Path(directory, name)
                found[path.relative_to(self.path).as_posix()] = path.stat().st_size
        return found

    def write(self, rel: str, staged: Path) -> None:
        destination = self._path(rel)
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
            with os.fdopen(handle, "wb") as out, staged.open("rb") as data:
                while chunk := data.read(PART_SIZE):
                    out.write(chunk)
            os.replace(temp, destination)
        except OSError as error:
            raise ModelError(f"cannot write {destination}: {error.strerror or error}") from None

    def verify(self, rel: str, staged: Staged, origin: str) -> str:
        arrived = stage_digest(self._path(rel)).sha256
        if arrived != staged.sha256:
            raise self._mismatch(rel, origin, arrived, staged.sha256)
        return "sha256"

    def read(self, rel: str) -> bytes:
        return self._path(rel).read_bytes()

    def _path(self, rel: str) -> Path:
        parts = [part for part in rel.split("/") if part not in ("", ".")]
        if not parts or ".." in parts:
            raise ModelError(f"refusing to write {rel!r}: it would land outside {self.path}")
        return self.path.joinpath(*parts)

    def _name(self, rel: str) -> str:
        return str(self._path(rel))


def _stream_sha256(storage: Storage, key: str) -> str:
    """The SHA-256 of an object as it reads now, streamed (no If-Match on an ETag that may not be an MD5)."""

    digest = hashlib.sha256()
    try:
        body = storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"]
        while chunk := body.read(PART_SIZE):
            digest.update(chunk)
    except Exception as error:  # botocore's and the network's errors become one line
        mapped = storage_error(error, f"reading back {storage.url(key)}", bucket=storage.bucket, key=key,
                               region=storage.region, endpoint_url=storage.endpoint_url,
                               access_key=storage.access_key, max_attempts=storage.max_attempts)
        if mapped is None:
            raise
        raise mapped from None
    return digest.hexdigest()


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix/` -> ("bucket", "some/prefix"); ModelError for anything else."""
    if not url.startswith("s3://") or not url[len("s3://"):].split("/", 1)[0]:
        raise ModelError(f"expected an S3 location like s3://bucket/prefix, got '{url}'")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    return bucket, prefix.strip("/")


def bucket_storage(system: "SystemConfig", bucket: str) -> Storage:
    """Another bucket as this host reaches its own: the instance role on AWS, the same MinIO and keys elsewhere."""
    return Storage(bucket, system.aws_app_region, endpoint_url=system.local_s3_endpoint_url,
                   access_key=system.local_access_key_id, secret_key=system.local_secret_access_key)


def open_target(spec: str, working: Storage, system: Optional["SystemConfig"] = None, *,
                location: Optional[str] = None) -> Target:
    """The target `--to` names: s3://bucket/prefix (the working bucket, or another one reached like it) or a
    folder. `location` (`--as s3://...`) only for a folder."""
    if spec.startswith("s3://"):
        if location:
            raise ModelError("--as is for a folder target; an S3 target names its own location")
        bucket, prefix = parse_s3_url(spec)
        if bucket == working.bucket:
            return S3Target(working, prefix)
        if system is None:
            raise ModelError(f"no storage configured for bucket {bucket}")
        return S3Target(bucket_storage(system, bucket), prefix, owned=True)
    return DirTarget(spec, location)


def _as_target(target: TargetSpec, source: Storage, target_storage: Optional[Storage]) -> Target:
    if isinstance(target, Target):
        return target
    if isinstance(target, Path):
        return DirTarget(target)
    if not str(target).strip():
        raise ModelError("name where to export to: s3://bucket/prefix or a folder")
    if isinstance(target, str) and target.startswith("s3://"):
        bucket, prefix = parse_s3_url(target)
        storage = target_storage or (source if bucket == source.bucket else None)
        if storage is None or storage.bucket != bucket:
            raise ModelError(f"{target}: a storage for bucket {bucket} is needed")
        return S3Target(storage, prefix)
    return DirTarget(str(target))


# --- training params ----------------------------------------------------------------------------------------------


def target_training_params(params: Mapping[str, Any], location: Optional[tuple[str, str]], *,
                           keep_endpoint: bool = False) -> dict[str, Any]:
    """The training params for a copy of the model at `location` (bucket, prefix): every location key names the
    copy (metrics at `<prefix>/metrics/TrainingMetrics.json`, metadata in model/, reward at the root); None
    drops them. One-element lists the simulator made of scalars become scalars again. A world name with its
    direction suffix becomes the track plus TRACK_DIRECTION_CLOCKWISE (the simulator adds the suffix back, and
    DRoA's import reads the flag), never both, which the simulator would turn into `<track>_cw_cw`."""
    moved: dict[str, Any] = {}
    if location is not None:
        bucket, prefix = location
        moved = {
            "SAGEMAKER_SHARED_S3_BUCKET": bucket, "SAGEMAKER_SHARED_S3_PREFIX": prefix,
            "METRICS_S3_BUCKET": bucket, "METRICS_S3_OBJECT_KEY": f"{prefix}/metrics/TrainingMetrics.json",
            "MODEL_METADATA_FILE_S3_KEY": f"{prefix}/model/{MODEL_METADATA}",
            "REWARD_FILE_S3_KEY": f"{prefix}/{REWARD_FUNCTION}",
            "SIMTRACE_S3_BUCKET": bucket, "SIMTRACE_S3_PREFIX": prefix,
        }
        if "MP4_S3_BUCKET" in params or "MP4_S3_OBJECT_PREFIX" in params:
            moved.update(MP4_S3_BUCKET=bucket, MP4_S3_OBJECT_PREFIX=f"{prefix}/mp4")
        if keep_endpoint and params.get("S3_ENDPOINT_URL"):
            moved["S3_ENDPOINT_URL"] = params["S3_ENDPOINT_URL"]
    # Keys keep their places; location keys the source lacked come last.
    out = {key: moved.get(key, yaml_scalar(value)) for key, value in params.items()
           if key not in LOCATION_KEYS or key in moved}
    out.update({key: value for key, value in moved.items() if key not in out})
    world = out.get("WORLD_NAME")
    if isinstance(world, str):
        for suffix, clockwise in _DIRECTION_SUFFIXES.items():
            if world.endswith(suffix) and len(world) > len(suffix):
                out["WORLD_NAME"] = world[:-len(suffix)]
                if "TRACK_DIRECTION_CLOCKWISE" not in out:
                    out["TRACK_DIRECTION_CLOCKWISE"] = clockwise
                break
    if "TRACK_DIRECTION_CLOCKWISE" in out:
        out["TRACK_DIRECTION_CLOCKWISE"] = _as_bool(out["TRACK_DIRECTION_CLOCKWISE"])
    return out


def dump_params(params: Mapping[str, Any]) -> str:
    """YAML in DRfC's style (explicit start, quoted strings); booleans stay YAML booleans, as DRoA writes them."""

    return dump(dict(params))


def _as_bool(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


# --- results --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedFile:
    path: str  # relative to the target
    size: int
    sha256: str
    verified_by: str  # sha256 (read back) or etag (the server's MD5 of what it stored)
    source: Optional[str] = None  # the source key, None for a file written here


@dataclass
class ExportResult:
    """What an export (or a download) wrote. `left_alone`: files already at the target that are not part of this
    export (only with overwrite); `problems`: the DRoA import check of the finished target."""

    source: str
    target: str
    checkpoint: Optional[Checkpoint]
    files: list[ExportedFile] = field(default_factory=list)
    training_params: Optional[dict[str, Any]] = None
    left_alone: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    def lines(self) -> list[str]:
        """What `deepracer models export` (and the dashboard's export) says about it, a line each."""
        size = (f"{self.bytes / 1024 ** 2:.1f} MiB" if self.bytes < 1024 ** 3 else f"{self.bytes / 1024 ** 3:.2f} GiB")
        # An export names its checkpoint.
        said = [f"exported {self.checkpoint.name} of {self.source} to {self.target}: "  # type: ignore[union-attr]
                f"{len(self.files)} files, {size}, checksums verified"]
        said += [f"left alone: {name} (already there)" for name in self.left_alone]
        said += [f"note: {note}" for note in self.notes]
        said += [f"DRoA import: {problem}" for problem in self.problems]
        return said

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["problems"] = [str(problem) for problem in self.problems]
        data["bytes"] = self.bytes
        return data


@dataclass(frozen=True)
class _Item:
    rel: str
    key: Optional[str] = None  # read from the source
    data: Optional[bytes] = None  # or written from here
    final: bool = False  # written after every other file


def _transfer(source: Storage, items: Sequence[_Item], target: Target) -> list[ExportedFile]:
    """Stage every item, write it, verify it; `final` items last."""
    rels = [item.rel for item in items]
    if len(set(rels)) != len(rels):
        raise ValueError(f"two files for one path in {rels}")
    with tempfile.TemporaryDirectory(prefix="deepracer-export-") as tmp:
        root = Path(tmp)

        def stage(pair: tuple[int, _Item]) -> Staged:
            number, item = pair
            path = root / f"{number:05d}"
            if item.data is not None:
                path.write_bytes(item.data)
            else:
                # An item without data has a key.
                source.download_file(item.key, path)  # type: ignore[arg-type]  # checked against the object's sha256 metadata, if any
            return stage_digest(path)

        staged = in_parallel(stage, list(enumerate(items)))

        def put(pair: tuple[_Item, Staged]) -> ExportedFile:
            item, copy = pair
            target.write(item.rel, copy.path)
            origin = source.url(item.key) if item.key else "this tool"
            how = target.verify(item.rel, copy, origin)
            return ExportedFile(item.rel, copy.size, copy.sha256, how, item.key)

        pairs = list(zip(items, staged))
        written = in_parallel(put, [p for p in pairs if not p[0].final])
        written += in_parallel(put, [p for p in pairs if p[0].final])
    return sorted(written, key=lambda f: f.path)


def _refuse_clobber(target: Target, overwrite: bool) -> dict[str, int]:
    existing = target.existing()
    if existing and not overwrite:
        example = sorted(existing)[0]
        raise ModelError(f"{target.url} already holds {len(existing)} file(s) (e.g. {example}); refusing to "
                         "overwrite: choose an empty target or pass --overwrite")
    return existing


# --- export -------------------------------------------------------------------------------------------------------


def export_model(source: Storage, prefix: str, checkpoint: CheckpointChoice, target: TargetSpec, *,
                 target_storage: Optional[Storage] = None, overwrite: bool = False,
                 fallback_params: Optional[Mapping[str, Any]] = None) -> ExportResult:
    """Package the model at `prefix` with one checkpoint for `target` (a Target, a folder Path, or
    s3://bucket/prefix with `target_storage` for that bucket when it is not the source's). `fallback_params`:
    the training params to use when the model has no training_params*.yaml (e.g. built from run.env)."""
    destination = _as_target(target, source, target_storage)
    location = locate(source, prefix)
    if destination.overlaps(source, location.root):
        raise ModelError(f"cannot export {source.url(location.root + '/')} to {destination.url}: one contains "
                         "the other")
    existing = _refuse_clobber(destination, overwrite)
    objects = inventory(source, location)
    document = checkpoints_document(source, location, objects)
    chosen = choose_checkpoint(location, objects, checkpoint, checkpoints_document=document,
                               coach_checkpoint=coach_checkpoint_text(source, location, objects), url=source.url)
    notes: list[str] = []
    params, params_from = _source_params(source, location, objects, fallback_params, notes)
    metadata_key, reward_key, hyper_key = _required_keys(source, location, objects, params, notes)
    model = "model/"
    items = [_Item(model + posixpath.basename(key), key) for key in chosen.keys]
    if chosen.frozen_graph:
        items.append(_Item(model + posixpath.basename(chosen.frozen_graph), chosen.frozen_graph))
    else:
        notes.append(f"model_{chosen.checkpoint.number}.pb (the frozen graph) is not in "
                     f"{source.url(location.prefix + '/model/')}: DRoA can import the folder, but no car package "
                     "can be made from this checkpoint")
    items += [_Item(model + MODEL_METADATA, metadata_key), _Item(MODEL_METADATA, metadata_key),
              _Item(REWARD_FUNCTION, reward_key), _Item(HYPERPARAMETERS, hyper_key)]
    items += _metrics_items(source, location, params_from, location.root, notes)
    exported_params = target_training_params(params, destination.location,
                                             keep_endpoint=destination.keeps_endpoint(source))
    if destination.location is None:
        notes.append(f"{TRAINING_PARAMS} names no bucket or prefix: {destination.url} is a folder; give its S3 "
                     "location (--as s3://bucket/prefix) to have them written")
    entry = _checkpoint_entry(source, location, objects, document, chosen, notes)
    items += [_Item(TRAINING_PARAMS, data=dump_params(exported_params).encode()),
              _Item(model + COACH_CHECKPOINT, data=chosen.checkpoint.name.encode(), final=True),
              _Item(model + CHECKPOINTS_JSON, data=(json.dumps(
                  {"best_checkpoint": entry, "last_checkpoint": entry}, indent=2) + "\n").encode(), final=True)]
    try:
        files = _transfer(source, items, destination)
        result = ExportResult(source=source.url(location.prefix + "/"), target=destination.url,
                              checkpoint=chosen.checkpoint, files=files, training_params=exported_params, notes=notes)
        result.left_alone = sorted(set(existing) - {f.path for f in files})
        result.problems = check_droa_folder(destination)
    finally:
        if destination is not target:
            destination.close()
    if result.bytes > DROA_MAX_BYTES:
        notes.append(f"{result.bytes / 1024 ** 3:.2f} GiB: more than DRoA's import takes (1 GiB)")
    return result


def export_run_model(storage: Storage, system: "SystemConfig", run: "RunConfig", prefix: str,
                     checkpoint: CheckpointChoice, to: str, *, location: Optional[str] = None,
                     overwrite: bool = False) -> ExportResult:
    """`deepracer models export PREFIX --checkpoint C --to TO`: `to` as open_target reads it, and, for the model
    run.env trains, its training params from run.env when the model has none of its own."""
    target = open_target(to, storage, system, location=location)
    fallback = training_params(system, run) if prefix.strip("/") == run.local_s3_model_prefix else None
    try:
        return export_model(storage, prefix, parse_choice(checkpoint), target, overwrite=overwrite,
                            fallback_params=fallback)
    finally:
        target.close()


def _source_params(source: Storage, location: ModelLocation, objects: Mapping[str, Any],
                   fallback: Optional[Mapping[str, Any]], notes: list[str]) -> tuple[dict[str, Any], Optional[dict]]:
    """(the params to export, the model's own params or None)."""
    key = params_key(location, objects)
    if key is not None:
        params = source.get_yaml(key)
        if not isinstance(params, dict):
            raise ModelError(f"{source.url(key)} is not a YAML mapping of keys to values")
        return params, params
    if fallback is None:
        raise ModelError(f"no training_params.yaml in {source.url(location.prefix + '/')}: the export needs the "
                         "track, race type and car it was trained with (run it from the run.env that trained it)")
    notes.append(f"{TRAINING_PARAMS} built from the current run.env: {source.url(location.prefix + '/')} has none")
    return dict(fallback), None


def _model_files(source: Storage, location: ModelLocation, objects: Mapping[str, Any],
                 params: Optional[Mapping[str, Any]], notes: list[str]) -> tuple[dict[str, str], list[str]]:
    """The keys of the metadata, reward function and hyperparameters by role, and what is missing. The params'
    keys (in this bucket) are the last resort for the first two: DRfC's custom_files/, which may have changed
    since the model was trained, so a note says so."""
    missing, found = [], {}
    for role, what, param in (("metadata", MODEL_METADATA, "MODEL_METADATA_FILE_S3_KEY"),
                              ("hyperparameters", HYPERPARAMETERS, None),
                              ("reward", REWARD_FUNCTION, "REWARD_FILE_S3_KEY")):
        key = first_present(location.candidates(role), objects)
        if key is None and param and params and _same_bucket(source, params, param):
            fallback = str(yaml_scalar(params.get(param))).strip("/")
            if fallback and source.exists(fallback):
                key = fallback
                notes.append(f"{what} taken from {source.url(key)} (the model has no copy of its own); "
                             "check it is the one the model was trained with")
        if key is None:
            missing.append(what)
        else:
            found[role] = key
    return found, missing


def _required_keys(source: Storage, location: ModelLocation, objects: Mapping[str, Any],
                   params: Optional[Mapping[str, Any]], notes: list[str]) -> tuple[str, str, str]:
    found, missing = _model_files(source, location, objects, params, notes)
    if missing:
        raise ModelError(f"cannot export {source.url(location.prefix + '/')}: missing {', '.join(missing)} (looked "
                         f"in the model's folders and where its training params point)")
    return found["metadata"], found["reward"], found["hyperparameters"]


def _same_bucket(source: Storage, params: Mapping[str, Any], key: str) -> bool:
    bucket = yaml_scalar(params.get("SAGEMAKER_SHARED_S3_BUCKET"))
    return params.get(key) is not None and bucket in (None, source.bucket)


def _metrics_items(source: Storage, location: ModelLocation, params: Optional[Mapping[str, Any]], root: str,
                   notes: list[str]) -> list[_Item]:
    """Everything under the metrics prefix, to metrics/; plus worker 1's TrainingMetrics.json again as
    metrics/training/training-<name>.json when there is no such file, the name DRoA's import looks for."""
    folder = metrics_prefix(source, location, params) + "/"
    items = []
    for info in source.list_objects(folder):
        rel = info.key[len(folder):]
        if rel and not rel.endswith("/") and ".." not in rel.split("/"):
            items.append(_Item(f"metrics/{rel}", info.key))
    rels = {item.rel: item for item in items}
    droa_visible = [rel for rel in rels if rel.startswith("metrics/training/")
                    and "training-" in posixpath.basename(rel) and rel.endswith(".json")]
    if not droa_visible and "metrics/TrainingMetrics.json" in rels:
        name = posixpath.basename(root) or "model"
        items.append(_Item(f"metrics/training/training-{name}.json", rels["metrics/TrainingMetrics.json"].key))
    if not items:
        notes.append(f"no training metrics under {source.url(folder)}")
    return items


def _checkpoint_entry(source: Storage, location: ModelLocation, objects: Mapping[str, Any], document: Any,
                      chosen: CheckpointFiles, notes: list[str]) -> dict[str, Any]:
    """The chosen checkpoint's entry in deepracer_checkpoints.json: the source's own entry when it names it
    (spelling and metric kept); otherwise one with the mean progress of that checkpoint's evaluation episodes
    (0.0 when the metrics have none) and the time its index file was written."""
    if isinstance(document, dict):
        for side in ("last_checkpoint", "best_checkpoint"):
            entry = document.get(side)
            if isinstance(entry, dict) and entry.get("name") == chosen.checkpoint.name:
                return dict(entry)

    progress = read_progress(source, location.prefix, metrics_prefix(source, location, None))
    judged = [it for it in progress.iterations if it.number == chosen.checkpoint.number and it.eval_episodes]
    metric = judged[0].eval_completion if judged else None
    if metric is None:
        notes.append(f"no evaluation of {chosen.checkpoint.name} in the metrics: its avg_eval_metric is 0.0 in "
                     f"{CHECKPOINTS_JSON}")
    index = objects.get(f"{location.prefix}/model/{chosen.checkpoint.name}.index")
    stamp = index.last_modified.timestamp() if index is not None and index.last_modified else \
        datetime.now(timezone.utc).timestamp()
    return {"name": chosen.checkpoint.name, "time_stamp": stamp, "avg_eval_metric": float(metric or 0.0)}


# --- the DRoA import check -------------------------------------------------------------------------------------


def droa_import_problems(files: Mapping[str, int], read: Callable[[str], bytes]) -> list[Problem]:
    """What DeepRacer on AWS's import would refuse in a folder (relative path -> size; `read` gives a file's
    bytes): its required files (the web page checks the names, the import reads them at these paths), the
    1 GB limit, SAC with a discrete action space or more than one episode between trainings, and what its
    model validation restores: model/model_metadata.json and the checkpoint .coach_checkpoint names (and
    every checkpoint deepracer_checkpoints.json names) with all its files. Warnings: no training metrics in
    metrics/training/, TRACK_DIRECTION_CLOCKWISE not a boolean."""
    problems: list[Problem] = []
    for name in (*DROA_REQUIRED, f"model/{MODEL_METADATA}", f"model/{COACH_CHECKPOINT}"):
        if name not in files:
            problems.append(Problem(name, "", "missing; DRoA's import requires it"))
    total = sum(files.values())
    if total > DROA_MAX_BYTES:
        problems.append(Problem("(folder)", "", f"{total} bytes: DRoA imports folders up to 1 GB"))

    def load(name: str, parse: Callable[[bytes], Any], kind: str) -> Any:
        if name not in files:
            return None
        try:
            return parse(read(name))
        except Exception as error:  # noqa: BLE001 - any parse failure is the file's problem
            problems.append(Problem(name, "", f"is not valid {kind}: {' '.join(str(error).split())[:200]}"))
            return None

    import yaml

    metadata = load(MODEL_METADATA, json.loads, "JSON")
    if metadata is not None:
        problems += [p for p in validate_model_metadata(metadata, MODEL_METADATA) if p.is_error]
    hyper = load(HYPERPARAMETERS, json.loads, "JSON")
    if isinstance(hyper, dict) and isinstance(metadata, dict):
        # SAC's rules and the continuous action space: import-droa's own check (session.checks.droa_rules)
        problems += droa_model_rules(metadata, hyper)
    elif hyper is not None and not isinstance(hyper, dict):
        problems.append(Problem(HYPERPARAMETERS, "", "expected a JSON object"))
    params = load(TRAINING_PARAMS, yaml.safe_load, "YAML")
    if params is not None:
        problems += _params_problems(params)
    source = load(REWARD_FUNCTION, lambda data: ast.parse(data.decode("utf-8")), "Python")
    if source is not None and not any(isinstance(node, ast.FunctionDef) and node.name == "reward_function"
                                      for node in source.body):
        problems.append(Problem(REWARD_FUNCTION, "", "defines no reward_function(params)"))
    problems += _checkpoint_problems(files, read)
    if not any(name.startswith("metrics/training/") and "training-" in posixpath.basename(name)
               and name.endswith(".json") for name in files):
        problems.append(Problem("metrics/training/", "", "no training-*.json: DRoA will show no training graph",
                                "warning"))
    return problems


def _params_problems(params: Any) -> list[Problem]:
    if not isinstance(params, dict):
        return [Problem(TRAINING_PARAMS, "", "expected a mapping of keys to values")]
    problems = []
    world = params.get("WORLD_NAME")
    if not isinstance(world, str) or not world:
        problems.append(Problem(TRAINING_PARAMS, "WORLD_NAME", "missing; DRoA's import takes the track from it"))
    direction = params.get("TRACK_DIRECTION_CLOCKWISE")
    if "TRACK_DIRECTION_CLOCKWISE" in params:
        if isinstance(world, str) and world.endswith(tuple(_DIRECTION_SUFFIXES)):
            problems.append(Problem(TRAINING_PARAMS, "WORLD_NAME", f"'{world}' has a direction suffix and "
                                    "TRACK_DIRECTION_CLOCKWISE is set: the simulator would add another"))
        if not isinstance(direction, bool):
            problems.append(Problem(TRAINING_PARAMS, "TRACK_DIRECTION_CLOCKWISE",
                                    f"{direction!r} is not a YAML boolean; DRoA reads anything else as "
                                    "counter-clockwise", "warning"))
    return problems


def _checkpoint_problems(files: Mapping[str, int], read: Callable[[str], bytes]) -> list[Problem]:
    names = [name[len("model/"):] for name in files if name.startswith("model/") and name.count("/") == 1]
    location = ModelLocation("m", "m")
    complete = complete_checkpoints(location, [f"m/model/{name}" for name in names])
    problems = []
    coach = f"model/{COACH_CHECKPOINT}"
    if coach in files:
        named = read(coach).decode("utf-8", "replace").strip()
        if named not in complete:
            problems.append(Problem(coach, "", f"names {named!r}, which has not all of its .index, .meta and .data "
                                               "files in model/"))
    document_name = f"model/{CHECKPOINTS_JSON}"
    if document_name in files:
        try:
            document = json.loads(read(document_name))
        except ValueError as error:
            return problems + [Problem(document_name, "", f"is not valid JSON: {error}")]
        for side, entry in zip(("last_checkpoint", "best_checkpoint"), parse_checkpoints_json(document)):
            if entry is not None and entry.name not in complete:
                problems.append(Problem(document_name, side, f"names {entry.name!r}, which has not all of its "
                                                             ".index, .meta and .data files in model/"))
    return problems


def check_droa_folder(target: Target) -> list[Problem]:
    """`droa_import_problems` of an export target as it is now."""
    return droa_import_problems(target.existing(), target.read)


# --- the physical car ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CarPackage:
    data: bytes  # the tar.gz
    checkpoint: Checkpoint
    sha256: str
    path: Optional[Path] = None  # where it was written, if asked to


def car_tar(files: Mapping[str, bytes]) -> bytes:
    """A tar.gz of `files` (path -> bytes) that depends on nothing but them: entries sorted, directories made
    explicit, times 0, owner root, modes 644/755, gzip without name or time."""
    directories = sorted({posixpath.dirname(name) for name in files if posixpath.dirname(name)})
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as compressed:
        with tarfile.open(fileobj=compressed, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name in sorted([*directories, *files]):
                info = tarfile.TarInfo(name)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
                if name in files:
                    info.size, info.mode = len(files[name]), 0o644
                    tar.addfile(info, io.BytesIO(files[name]))
                else:
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
    return buffer.getvalue()


def car_package(source: Storage, prefix: str, checkpoint: CheckpointChoice = "last", *,
                out: Optional[Path] = None) -> CarPackage:
    """The physical car's model upload (`model_metadata.json` + `agent/model.pb`, the chosen checkpoint's frozen
    graph), read from storage and checked against the sha256 stored with each object when there is one."""
    location = locate(source, prefix)
    objects = inventory(source, location)
    chosen = choose_checkpoint(location, objects, checkpoint,
                               checkpoints_document=checkpoints_document(source, location, objects),
                               coach_checkpoint=coach_checkpoint_text(source, location, objects), url=source.url)
    if chosen.frozen_graph is None:
        # Complete checkpoints are numbered.
        with_graph = sorted(f.checkpoint.number for f in complete_checkpoints(location, objects).values()  # type: ignore[type-var]
                            if f.frozen_graph)
        raise ModelError(f"model_{chosen.checkpoint.number}.pb of {chosen.checkpoint.name} is not in "
                         f"{source.url(location.prefix + '/model/')}; checkpoints with a frozen graph: "
                         f"{', '.join(map(str, with_graph)) or 'none'}")
    metadata_key = first_present(location.candidates("metadata"), objects)
    if metadata_key is None:
        raise ModelError(f"no {MODEL_METADATA} for {source.url(location.prefix + '/')} (looked for "
                         f"{', '.join(location.candidates('metadata'))})")
    data = car_tar({CAR_METADATA: _get_verified(source, metadata_key),
                    CAR_GRAPH: _get_verified(source, chosen.frozen_graph)})
    path = None
    if out is not None:
        path = Path(out).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except OSError as error:
            raise ModelError(f"cannot write {path}: {error.strerror or error}") from None
    return CarPackage(data, chosen.checkpoint, hashlib.sha256(data).hexdigest(), path)


def _get_verified(storage: Storage, key: str) -> bytes:
    info = storage.stat(key)
    data = storage.get_bytes(key)
    actual = hashlib.sha256(data).hexdigest()
    if len(data) != info.size or (info.sha256 and actual != info.sha256):
        stored = f" and SHA-256 {info.sha256[:12]}…" if info.sha256 else ""
        raise ChecksumMismatch(f"{storage.url(key)} read as {len(data)} bytes with SHA-256 {actual[:12]}…, the "
                               f"object has {info.size} bytes{stored}; try again", code="ChecksumMismatch")
    return data


# --- a model from elsewhere -------------------------------------------------------------------------------------


def download_model(source_url: str, source: Storage, dest: Storage, dest_prefix: str, *,
                   overwrite: bool = False) -> ExportResult:
    """Bring the model at `source_url` (in `source`'s bucket) into `dest` at `dest_prefix` as a pretrained base:
    all of model/ (the trainer's sync markers aside), ip/hyperparameters.json, the metadata, reward function,
    training params (naming the new place) and metrics. Refused unless it has metadata, hyperparameters, a reward
    function and a complete checkpoint (and the checkpoints its deepracer_checkpoints.json names)."""
    bucket, prefix = parse_s3_url(source_url)
    if bucket != source.bucket:
        raise ModelError(f"{source_url}: the storage given is for bucket {source.bucket}, not {bucket}")
    if not prefix:
        raise ModelError(f"{source_url}: name the model's prefix, e.g. s3://{bucket}/rl-deepracer-sagemaker")
    location = locate(source, prefix)
    destination = S3Target(dest, dest_prefix)
    if destination.overlaps(source, location.root):
        raise ModelError(f"cannot download {source_url} to {destination.url}: one contains the other")
    objects = inventory(source, location)
    document = checkpoints_document(source, location, objects)
    complete = complete_checkpoints(location, objects)
    notes: list[str] = []
    own_params_key = params_key(location, objects)
    own = source.get_yaml(own_params_key) if own_params_key is not None else None
    own = own if isinstance(own, dict) else None
    keys, missing = _model_files(source, location, objects, own, notes)
    if not complete:
        missing.append("a complete checkpoint in model/ (.index, .meta and .data files)")
    for side, entry in zip(("last", "best"), parse_checkpoints_json(document)):
        if entry is not None and entry.name not in complete:
            missing.append(f"the files of {entry.name}, the {side} checkpoint in {CHECKPOINTS_JSON}")
    if missing:
        raise ModelError(f"{source.url(location.prefix + '/')} cannot be a pretrained base: missing "
                         f"{'; '.join(dict.fromkeys(missing))}")
    existing = _refuse_clobber(destination, overwrite)
    folder = f"{location.prefix}/model/"
    names = [n for n in model_names(location, objects) if n not in HANDOFF_MARKERS]
    pointers = (COACH_CHECKPOINT, CHECKPOINTS_JSON)
    items = [_Item(f"model/{name}", folder + name, final=name in pointers) for name in sorted(names)]
    newest = max(complete.values(), key=lambda f: (f.checkpoint.number or 0, f.checkpoint.steps or 0))
    if COACH_CHECKPOINT not in names:
        last = parse_checkpoints_json(document)[0]
        named = last.name if last is not None else newest.checkpoint.name
        items.append(_Item(f"model/{COACH_CHECKPOINT}", data=named.encode(), final=True))
        notes.append(f"model/{COACH_CHECKPOINT} written, naming {named}")
    if CHECKPOINTS_JSON not in names:
        newest_entry = _checkpoint_entry(source, location, objects, None, newest, notes)
        items.append(_Item(f"model/{CHECKPOINTS_JSON}", data=(json.dumps(
            {"best_checkpoint": newest_entry, "last_checkpoint": newest_entry}, indent=2) + "\n").encode(), final=True))
        notes.append(f"model/{CHECKPOINTS_JSON} written with {newest.checkpoint.name} as last and best")
    if MODEL_METADATA not in names:
        items.append(_Item(f"model/{MODEL_METADATA}", keys["metadata"]))
    items += [_Item(MODEL_METADATA, keys["metadata"]), _Item(HYPERPARAMETERS, keys["hyperparameters"]),
              _Item(REWARD_FUNCTION, keys["reward"])]
    params = None
    if own is not None:
        params = target_training_params(own, destination.location, keep_endpoint=destination.keeps_endpoint(source))
        items.append(_Item(TRAINING_PARAMS, data=dump_params(params).encode()))
    items += _metrics_items(source, location, own, location.root, notes)
    files = _transfer(source, items, destination)
    last = parse_checkpoints_json(document)[0]
    return ExportResult(source=source.url(location.prefix + "/"), target=destination.url,
                        checkpoint=last or newest.checkpoint, files=files, training_params=params,
                        left_alone=sorted(set(existing) - {f.path for f in files}), notes=notes)


__all__ = [
    "CarPackage", "DROA_MAX_BYTES", "DirTarget", "ExportResult", "ExportedFile", "ModelError", "S3Target", "Target",
    "bucket_storage", "car_package", "car_tar", "check_droa_folder", "download_model", "droa_import_problems",
    "dump_params", "export_model", "open_target", "parse_s3_url", "target_training_params",
]
