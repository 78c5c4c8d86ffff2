"""The stack's cost settings as the host reads them: the monthly budget, from the small JSON object the Pulumi
program keeps at COST_SETTINGS_KEY in the bucket (AWS) or the models container (Azure) that the host reads anyway.

Not in the user data (a change there replaces the host) and not a secret: a new budget is one object rewritten,
with no new permission for the host. A local machine, or a stack that set no budget, has none.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Callable, Optional

from session.core.pricing import COST_SETTINGS_KEY, MONTHLY_BUDGET_FIELD
from session.storage.blob import BlobStore, blob_store_for
from session.storage.mirror_sync import MirrorSyncError
from session.storage.s3 import ObjectNotFound, StorageError

if TYPE_CHECKING:  # pragma: no cover
    from session.core.config import SystemConfig
    from session.storage.s3 import Storage


def parse_cost_settings(data: bytes, where: str = COST_SETTINGS_KEY) -> Optional[float]:
    """The monthly budget in USD the object names (None: no budget set); StorageError for anything else."""
    try:
        document = json.loads(data)
        budget = document[MONTHLY_BUDGET_FIELD]
    except (ValueError, KeyError, TypeError):
        raise StorageError(f"{where}: expected {{\"{MONTHLY_BUDGET_FIELD}\": a number or null}}, got "
                           f"{data[:100]!r}", code="NotCostSettings") from None
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0:
        raise StorageError(f"{where}: {MONTHLY_BUDGET_FIELD}: expected a positive number, got {budget!r}",
                           code="NotCostSettings")
    return float(budget)


def read_monthly_budget(system: "SystemConfig", storage: Callable[[], "Storage"],
                        blob: Optional[Callable[[], BlobStore]] = None) -> Optional[float]:
    """The stack's monthly budget: from the working bucket on AWS, from the blob container on Azure (MinIO holds
    the models there, the stack writes to Blob); None locally, or when the stack wrote no settings (an older
    stack) or no budget. StorageError (or MirrorSyncError) when the object cannot be read."""
    if system.cloud == "aws":
        try:
            return parse_cost_settings(storage().get_bytes(COST_SETTINGS_KEY), storage().url(COST_SETTINGS_KEY))
        except ObjectNotFound:
            return None
    if system.cloud == "azure":
        store = blob() if blob is not None else blob_store_for(system)
        try:
            data = b"".join(store.chunks(COST_SETTINGS_KEY))
        except MirrorSyncError as error:
            if error.code == "BlobNotFound":
                return None
            raise
        return parse_cost_settings(data, store.url_of(COST_SETTINGS_KEY))
    return None
