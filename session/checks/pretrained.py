"""The pretrained model a run starts from: present in storage, with the checkpoint asked for and all its files."""

from __future__ import annotations

from session.core.config import RunConfig
from session.core.errors import DeepracerError
from session.storage.layout import CHECKPOINT_SUFFIXES, CHECKPOINTS_JSON
from session.storage.s3 import Storage


class PretrainedError(DeepracerError):
    """The pretrained model would not load; `str()` starts with the run.env setting to fix."""


def check_pretrained(run: RunConfig, storage: Storage) -> None:
    """The model to start from must hold the checkpoint asked for, with all its files: the simulator would
    only fail on it once the containers run. Raises PretrainedError naming the setting: `validate` reports it,
    `train` refuses to start.

    The checkpoint is `best` or `last` as deepracer_checkpoints.json names them, the only two the simulator
    honours (simapp 6.0.4 bundle/markov/training_worker.py; run.env refuses any other value)."""
    if not run.local_s3_pretrained:
        return
    model = f"{run.local_s3_pretrained_prefix}/model/"
    names = {info.key.rsplit("/", 1)[-1] for info in storage.list_objects(model)}
    if not any(name.endswith(".ckpt.index") for name in names):
        raise PretrainedError(f"DR_LOCAL_S3_PRETRAINED_PREFIX: expected a model with checkpoints at "
                            f"{storage.url(model)}, got none")
    checkpoint = run.local_s3_pretrained_checkpoint
    if checkpoint not in ("best", "last"):
        raise PretrainedError(f"DR_LOCAL_S3_PRETRAINED_CHECKPOINT: expected best or last (the simulator reads "
                            f"anything else as last), got '{checkpoint}'")
    if CHECKPOINTS_JSON not in names:
        raise PretrainedError(f"DR_LOCAL_S3_PRETRAINED_CHECKPOINT: '{checkpoint}' needs "
                            f"{storage.url(model)}deepracer_checkpoints.json, which is missing")
    document = storage.get_json(f"{model}{CHECKPOINTS_JSON}")
    entry = document.get(f"{checkpoint}_checkpoint") if isinstance(document, dict) else None
    stem = entry.get("name", "") if isinstance(entry, dict) else ""
    if stem.endswith(".ckpt"):
        stem = stem[:-len(".ckpt")]
    if not stem:
        raise PretrainedError(f"DR_LOCAL_S3_PRETRAINED_CHECKPOINT: expected a {checkpoint}_checkpoint entry in "
                            f"{storage.url(model)}deepracer_checkpoints.json, got none")
    missing = [f"{stem}{suffix}" for suffix in CHECKPOINT_SUFFIXES if f"{stem}{suffix}" not in names]
    if missing:
        raise PretrainedError(f"DR_LOCAL_S3_PRETRAINED_CHECKPOINT: the {checkpoint} checkpoint {stem} misses "
                            f"{', '.join(missing)} under {storage.url(model)}")
