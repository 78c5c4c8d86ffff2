"""`validate`: everything that can be checked before GPU time is spent, as one list of problems.

Runs on the training host and on a laptop alike: tracks come from a directory (the host caches the image's),
and the storage checks run only when storage is given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Optional

from session.checks.custom_files import (
    HYPERPARAMETERS,
    MODEL_METADATA,
    check_custom_files,
    load_json,
    training_algorithm_of,
)
from session.checks.pretrained import PretrainedError, check_pretrained
from session.checks.reward import check_reward_function
from session.checks.sizing import Sizing, size_run
from session.checks.tracks import TrackError, TrackLibrary, check_world_name
from session.core import console
from session.core.config import ConfigError, RunConfig, SystemConfig
from session.core.defaults import MAX_WORKERS
from session.core.paths import HOST_TRACKS_DIR, tracks_dir_candidates
from session.core.problems import Problem
from session.storage.s3 import StorageError

if TYPE_CHECKING:
    from session.checks.tracks import Track


class Findings(list):
    """`validate`'s problems (a list, as before), with the run's sizing (None when it could not be worked out)."""

    sizing: Optional[Sizing] = None


@dataclass(frozen=True)
class NotChecked(Problem):
    """A check that could not run (e.g. no track files for the reward dry run): a warning for `validate`, which
    then does not report success, and an error for `train`, which must not start on an unchecked reward."""


def tracks_dir(explicit: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> Optional[Path]:
    for candidate in tracks_dir_candidates(explicit, environ):
        if Path(candidate).is_dir():
            return Path(candidate)
    if explicit:
        raise ConfigError(explicit, None, "--tracks", "a directory of track .npy files", explicit)
    return None


def _run_env_name(run: RunConfig, key: str) -> str:
    origin = run.origins.get(key)
    return f"{origin.path}:{origin.line}" if origin and origin.line else (origin.path if origin else "run.env")


def check_config(run: RunConfig) -> list[Problem]:
    try:
        run.check_training()
    except ConfigError as error:
        return [Problem(_run_env_name(run, "DR_RACE_TYPE"), "DR_RACE_TYPE",
                        f"expected {error.expected}, got '{error.got}'")]
    return []


def check_tracks(run: RunConfig, workers: int, directory: Optional[Path]) -> tuple[list[Problem], Optional[Track]]:
    """World names of run.env and every worker config; returns the track the dry run drives on."""

    if directory is None:
        return [NotChecked("tracks", "DR_WORLD_NAME", f"no track files (--tracks DIR, DR_TRACKS_DIR or "
                           f"{HOST_TRACKS_DIR}): the world name and the reward function's dry run were NOT checked",
                           "warning")], None
    library = TrackLibrary(directory)
    problems: list[Problem] = []
    seen = set()
    for worker in range(1, workers + 1):
        config = run.for_worker(worker)
        if config.world_name in seen:
            continue
        seen.add(config.world_name)
        problems += check_world_name(library, config.world_name, file=_run_env_name(config, "DR_WORLD_NAME"))
    track = None
    if not any(p.is_error for p in problems):
        track = library.load(run.world_name)
    return problems, track


def _action_space(custom_files: Path):
    try:
        return json.loads((custom_files / "model_metadata.json").read_text()).get("action_space")
    except (OSError, ValueError, AttributeError):
        return None  # the metadata check reports why


def check_storage(run: RunConfig, storage) -> list[Problem]:
    """What `train` would refuse, found early: the bucket, the model prefix, the pretrained model."""

    problems: list[Problem] = []
    try:
        storage.check_bucket()
        prefix = run.local_s3_model_prefix
        if storage.prefix_has_objects(f"{prefix}/"):
            problems.append(Problem(_run_env_name(run, "DR_LOCAL_S3_MODEL_PREFIX"), "DR_LOCAL_S3_MODEL_PREFIX",
                                    f"{storage.url(prefix + '/')} already holds a model: `train` refuses it "
                                    "without --overwrite (`deepracer increment` picks a new prefix)", "warning"))
        try:
            check_pretrained(run, storage)  # the same rule `train` applies
        except PretrainedError as error:
            key = str(error).split(":", 1)[0]
            problems.append(Problem(_run_env_name(run, key), key, str(error).split(": ", 1)[-1]))
    except StorageError as error:
        problems.append(Problem("storage", storage.url(), str(error)))
    return problems


def track_lengths(run: RunConfig, workers: int, directory: Optional[Path]) -> dict[str, float]:
    """Centre-line length (m) of each world the workers drive, for the worlds whose track file is there."""
    if directory is None:
        return {}
    library = TrackLibrary(directory)
    lengths: dict[str, float] = {}
    for worker in range(1, workers + 1):
        name = run.for_worker(worker).world_name
        if name in lengths:
            continue
        try:
            lengths[name] = library.load(name).length
        except (TrackError, OSError, ValueError):
            pass  # check_tracks reports the world name
    return lengths


def check_sizing(run: RunConfig, workers: int, custom_files: Path, tracks: Optional[Path]) -> Optional[Sizing]:
    """Episodes per worker, round robin and steps per iteration (session.checks.sizing). The files' own
    problems are check_custom_files'; a file that cannot be read leaves the sizing out."""
    metadata, metadata_problems = load_json(custom_files / MODEL_METADATA)
    hyperparameters, problems = load_json(custom_files / HYPERPARAMETERS)
    if hyperparameters is None and problems and "not found" not in problems[0].message:
        return None
    return size_run(run, workers, hyperparameters, metadata if not any(p.is_error for p in metadata_problems)
                    else None, track_lengths(run, workers, tracks), algorithm=training_algorithm_of(metadata))


def validate(system: SystemConfig, run: RunConfig, custom_files: Path, *, workers: Optional[int] = None,
             tracks: Optional[Path] = None, calls: int = 500, storage=None,
             say: Callable[[str], None] = console.say) -> Findings:
    """Every problem found, as `Findings` (a list of Problem; `.sizing` holds the run's sizing). The sizing's
    explanation lines go to `say` first."""
    workers = system.workers if workers is None else workers
    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be from 1 to {MAX_WORKERS}, got {workers}")  # the CLI refuses it first
    problems = Findings(check_config(run))
    track_problems, track = check_tracks(run, workers, tracks)
    problems += track_problems
    if not custom_files.is_dir():
        problems.append(Problem(str(custom_files), "",
                                "expected a folder with reward_function.py, model_metadata.json and "
                                "hyperparameters.json (`deepracer init` writes the defaults)"))
        return problems
    problems += check_custom_files(custom_files)
    problems.sizing = check_sizing(run, workers, custom_files, tracks)
    if problems.sizing is not None:
        for line in problems.sizing.lines():
            say(line)
        problems += problems.sizing.problems
    reverse = None if run.train_alternate_driving_direction else run.train_reverse_direction
    problems += check_reward_function(custom_files / "reward_function.py", track, calls=calls, reverse=reverse,
                                      race_type=run.race_type, action_space=_action_space(custom_files)).problems
    if storage is not None:
        problems += check_storage(run, storage)
    return problems


def validate_for_training(host, workers: Optional[int] = None,
                          say: Callable[[str], None] = console.say) -> list[Problem]:
    """What `train` checks first (the storage checks that `train` makes itself are left to it). A check that
    could not run is an error here: training must not start on a reward function nobody dry-ran."""
    problems = validate(host.system, host.run, host.custom_files, workers=workers, tracks=tracks_dir(), say=say)
    return [replace(p, severity="error", message=f"{p.message}; `train` does not start without them (the first "
                                                 f"boot caches the image's tracks there; DR_TRACKS_DIR names "
                                                 f"another folder)") if isinstance(p, NotChecked) else p
            for p in problems]
