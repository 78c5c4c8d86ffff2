"""`increment`: continue training from the current model under a new prefix (DRfC's dr-increment-training).

run.env is rewritten in place (comments kept, a backup beside it); the old model is only ever read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from session.core.config import RunConfig
from session.core.envfile import rewrite_env_file
from session.core.errors import DeepracerError
from session.storage.s3 import Storage

_SERIAL = re.compile(r"^(.*?)(\d+)$")
MAX_SKIPS = 100  # prefixes tried past ones that already hold objects


class IncrementError(DeepracerError):
    """`str()` is one line for the user."""


@dataclass(frozen=True)
class Increment:
    old_prefix: str
    new_prefix: str
    checkpoint: str
    backup: Optional[Path]

    def summary(self, run_env: Path) -> str:
        """What `deepracer increment` (and the dashboard's control) says it did, one line."""
        return (f"{run_env}: DR_LOCAL_S3_MODEL_PREFIX={self.new_prefix}, pretrained from {self.old_prefix} "
                f"({self.checkpoint} checkpoint)" + (f"; backup {self.backup}" if self.backup else ""))


def next_prefix(prefix: str, delimiter: str = "-") -> str:
    """`model-7` -> `model-8`, `model-009` -> `model-010`, `model` -> `model-1` (DRfC's rule)."""
    match = _SERIAL.match(prefix)
    if not match:
        return f"{prefix}{delimiter}1"
    stem, digits = match.groups()
    return f"{stem}{int(digits) + 1:0{len(digits)}d}"


def _has_checkpoint(storage: Storage, prefix: str) -> bool:
    return any(info.key.endswith(".ckpt.index") for info in storage.list_objects(f"{prefix}/model/"))


def plan_increment(run: RunConfig, storage: Optional[Storage], *, checkpoint: str = "last",
                   prefix: Optional[str] = None, available: Callable[[str], bool] = lambda _: True) -> tuple[str, str]:
    """(old prefix, new prefix). With storage: the old model must have a checkpoint, and the new prefix must be
    empty — an explicit one is refused, a derived one skips to the next free serial."""
    old = run.local_s3_model_prefix
    if storage is not None:
        if not _has_checkpoint(storage, old):
            raise IncrementError("DR_LOCAL_S3_MODEL_PREFIX: expected a trained model at "
                                 f"{storage.url(old + '/model/')}, got no checkpoint there; train first")
        available = lambda name: not storage.prefix_has_objects(f"{name}/")  # noqa: E731 - the parameter's default, inline
    if prefix:
        if prefix == old:
            raise IncrementError(f"--prefix: expected a prefix other than the current model, got '{prefix}'")
        if not available(prefix):
            raise IncrementError(f"--prefix: expected an empty prefix, got '{prefix}' which already holds objects")
        return old, prefix
    candidate = next_prefix(old)
    for _ in range(MAX_SKIPS):
        if available(candidate):
            return old, candidate
        candidate = next_prefix(candidate)
    raise IncrementError(f"no free prefix after {old} within {MAX_SKIPS} serials; pass --prefix NAME")


def increment(run_env: Path, run: RunConfig, storage: Optional[Storage], *, checkpoint: str = "last",
              prefix: Optional[str] = None, pretrained_prefix: Optional[str] = None) -> Increment:
    """`pretrained_prefix`: start from that model (e.g. one checkpoint exported on its own) instead of the
    current one, which still gives the new prefix its serial."""
    if checkpoint not in ("last", "best"):
        # simapp 6.0.4 honours best, else last (bundle/markov/training_worker.py): a number would be ignored.
        old = run.local_s3_model_prefix
        number = checkpoint if checkpoint.isdigit() else "N"
        raise IncrementError(f"--checkpoint: expected last or best (the simulator starts from no other), got "
                             f"'{checkpoint}'; to continue from checkpoint {number}: `deepracer models export {old} "
                             f"--checkpoint {number} --to s3://BUCKET/{old}-checkpoint-{number}`, then set "
                             f"DR_LOCAL_S3_PRETRAINED_PREFIX={old}-checkpoint-{number} and "
                             f"DR_LOCAL_S3_PRETRAINED_CHECKPOINT=last")
    old, new = plan_increment(run, storage, checkpoint=checkpoint, prefix=prefix)
    backup = rewrite_env_file(run_env, {
        "DR_LOCAL_S3_PRETRAINED": "True",
        "DR_LOCAL_S3_PRETRAINED_PREFIX": pretrained_prefix or old,
        "DR_LOCAL_S3_PRETRAINED_CHECKPOINT": checkpoint,
        "DR_LOCAL_S3_MODEL_PREFIX": new,
    })
    return Increment(old, new, checkpoint, backup)
