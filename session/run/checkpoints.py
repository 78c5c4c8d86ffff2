"""The complete checkpoints of a model in storage: the ones a run can be resumed or continued from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from session.run.progress import checkpoint_files
from session.storage.layout import CHECKPOINT_SUFFIXES
from session.storage.s3 import Storage


@dataclass(frozen=True)
class StoredCheckpoint:
    name: str  # 12_Step-3456.ckpt
    number: int
    url: str  # where its files are


def complete_checkpoints(storage: Storage, prefix: str) -> list[StoredCheckpoint]:
    """The checkpoints under `<prefix>/model/` whose index, meta and data files are all there, oldest first
    (one the trainer was writing when it stopped has some of them only)."""
    folder = f"{prefix}/model/"
    names = {info.key[len(folder):] for info in storage.list_objects(folder)}
    found = []
    for checkpoint in checkpoint_files(names):
        stem = checkpoint.name[:-len(".ckpt")]
        if all(f"{stem}{suffix}" in names for suffix in CHECKPOINT_SUFFIXES) and checkpoint.number is not None:
            found.append(StoredCheckpoint(checkpoint.name, checkpoint.number, storage.url(f"{folder}{stem}.ckpt")))
    return found


def newest_checkpoint(storage: Storage, prefix: str) -> Optional[StoredCheckpoint]:
    found = complete_checkpoints(storage, prefix)
    return found[-1] if found else None
