"""The keeper: models kept beyond this machine's disk, wherever the host runs, so no caller asks which cloud it is.

- azure: the working bucket is MinIO on the VM's temp disk, which a deallocation wipes; the stack's blob container
  (system.env's DR_AZURE_STORAGE_ACCOUNT and DR_AZURE_BLOB_CONTAINER) keeps the models, reached as the VM's
  managed identity.
- local: MinIO under /mnt/deepracer is durable, but it is one disk in one room. With DR_MODEL_COPY_URL set
  (`infra.local_prepare --copy-models-to`) the models are copied to that bucket (s3://…, with the AWS profile
  DR_MODEL_COPY_PROFILE or boto3's default chain) or blob container (https://<account>.blob.core.windows.net/…,
  as `az login` or the environment's service principal: DefaultAzureCredential, the right chain on a PC), or to a
  folder inside either (`s3://bucket/deepracer`: session.storage.folder_mirror).
- aws, remote, and local without a copy: the working bucket is the only copy wanted; every method does nothing.

The copy itself is session.storage.mirror_sync (checkpoints first, pointers last, every byte checked) to a
`BlobStore` or an `S3Mirror` alike: after each stop, every 10 minutes for the runs on the host
(deepracer-blob-sync.timer: `sync_running`), and on demand (`deepracer sync-models`, `deepracer models restore`).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

from session.core import console
from session.core.console import Say
from session.storage.blob import BlobStore, blob_store_for, is_azure
from session.storage.folder_mirror import FolderMirror
from session.storage.mirror_sync import (
    Mirror,
    MirrorSyncError,
    SyncReport,
    prefix_folder,
    restore_prefix_from_mirror,
    sync_all,
    sync_each,
)
from session.storage.s3 import Storage
from session.storage.s3_mirror import S3Mirror

if TYPE_CHECKING:  # pragma: no cover
    from session.core.config import SystemConfig
    from session.engine.containers import ContainerInfo, Engine

RECENT_EXIT = timedelta(hours=1)  # a run that ended on its own this recently is still synced by the timer
COPY_URL_KEY = "DR_MODEL_COPY_URL"


def has_mirror(system: "SystemConfig") -> bool:
    """Whether this host keeps its models somewhere else too: Azure always, a local machine when asked."""
    return is_azure(system) or (system.cloud == "local" and bool(system.model_copy_url))


def mirror_for(system: "SystemConfig", *, credential: Any = None, endpoint_url: Optional[str] = None) -> Mirror:
    """Where this host's models are kept (see the module's docstring). `credential` and `endpoint_url` replace
    the real ones (tests: Azurite's key, moto's server)."""
    if is_azure(system):
        return blob_store_for(system, credential=credential, url=endpoint_url)
    url = (system.model_copy_url or "").rstrip("/")
    if system.cloud != "local" or not url:
        raise MirrorSyncError(f"{COPY_URL_KEY}: DR_CLOUD={system.cloud} keeps no copy of its models (only azure "
                              "hosts, and local machines with DR_MODEL_COPY_URL set, do)", code="NoMirror")
    target, folder = _split_copy_url(url)
    found = _copy_target(system, target, credential=credential, endpoint_url=endpoint_url)
    return FolderMirror(found, folder) if folder else found


def _split_copy_url(url: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> (`s3://bucket`, `a/b`); `https://acct.blob.core.windows.net/box/a` -> (…/box, `a`)."""
    scheme, _, rest = url.partition("://")
    parts = rest.split("/")
    kept = 1 if scheme == "s3" else 2  # the bucket; the account's host and the container
    return f"{scheme}://{'/'.join(parts[:kept])}", "/".join(parts[kept:])


def _copy_target(system: "SystemConfig", url: str, *, credential: Any, endpoint_url: Optional[str]) -> Mirror:
    if url.startswith("s3://"):
        return S3Mirror(Storage(url[len("s3://"):], system.aws_app_region, endpoint_url=endpoint_url,
                                profile=system.model_copy_profile))
    account_url, container = url.rsplit("/", 1)
    if credential is None:
        try:
            from azure.identity import DefaultAzureCredential  # start-up: the Azure SDK loads only for this copy
        except ImportError:
            # A URL set in system.env after the prepare ran: the bootstrap installs the SDK only when it sees one.
            raise MirrorSyncError(f"{COPY_URL_KEY}: a blob container needs the Azure SDK, which this Python lacks: "
                                  "/opt/deepracer/venv/bin/pip install 'azure-identity>=1.17' "
                                  "'azure-storage-blob>=12.20' (or run `infra.local_prepare` again)",
                                  code="NoAzureSdk") from None
        # A PC has no managed identity; asking for one would only add a timeout before the useful answers.
        credential = DefaultAzureCredential(exclude_managed_identity_credential=True)
    return BlobStore(endpoint_url or account_url, container, credential,
                     identity="the Azure login of this user (az login)")


def require_mirror(system: "SystemConfig", command: str) -> None:
    """For commands that only make sense with a copy beyond the working bucket (`sync-models`, `models restore`)."""
    if not has_mirror(system):
        raise MirrorSyncError(f"`deepracer {command}` copies models between this host's MinIO and where they are kept "
                              f"beyond it: an Azure host's blob container, or on DR_CLOUD=local the bucket or "
                              f"container {COPY_URL_KEY} names; this host has DR_CLOUD={system.cloud}"
                              + (f" and no {COPY_URL_KEY}" if system.cloud == "local" else
                               ", whose models are in the working bucket already"), code="NoMirror")


class Keeper:
    """Keeps this host's models beyond the machine (see the module's docstring); every method does nothing where
    nothing is to keep. The Host carries one (session.host.factory); the run layer calls it where a model's life
    needs it (start, stop, resume).

    `mirror` replaces the copy target (tests: Azurite, moto); it is built when first needed."""

    def __init__(self, system: "SystemConfig", storage: Storage, mirror: Optional[Mirror] = None) -> None:
        self.system, self.storage, self._mirror = system, storage, mirror
        self._present: set[str] = set()  # prefixes found in MinIO already: a second restore asks nothing

    @property
    def active(self) -> bool:
        return has_mirror(self.system)

    @property
    def mirror(self) -> Mirror:
        if self._mirror is None:
            self._mirror = mirror_for(self.system)
        return self._mirror

    def keep(self, prefixes: Iterable[str], *, deadline: Optional[datetime] = None,
             now: Optional[Callable[[], datetime]] = None, say: Say = console.say) -> list[SyncReport]:
        """After a stop has saved the logs: each prefix (checkpoints, metrics, logs) to the mirror, in the order
        given. With a `deadline` (a spot notice's NotBefore, UTC) the checkpoints go first, the newest complete
        one first, and no copy starts after it; what was left is said."""
        prefixes = list(dict.fromkeys(prefixes))
        if not self.active or not prefixes:
            return []
        reports = sync_each(self.storage, self.mirror, prefixes, say, deadline=deadline, now=now)
        for report in reports:
            if report.left:
                shown = ", ".join(report.left[:8]) + (f" and {len(report.left) - 8} more" if len(report.left) > 8
                                                      else "")
                say(f"not copied to {report.target} before the deadline: {shown}")
        return reports

    def restore(self, prefix: str, *, say: Say = console.say) -> Optional[SyncReport]:
        """A model prefix back from the mirror when MinIO holds nothing under its model/ and the mirror holds the
        prefix (what a model needs before training or resuming from it on a fresh VM). None when nothing was to
        do, and where nothing is kept; whoever needed the model says what is missing."""
        if not self.active or prefix in self._present:
            return None
        report = ensure_in_minio(self.storage, self.mirror, prefix, say=say)
        self._present.add(prefix)
        return report

    def claim(self, prefix: str, *, overwrite: bool = False, say: Say = console.say) -> None:
        """Before training into `prefix` (after MinIO's own check): a model the mirror keeps under that name from
        an earlier run or VM is not mixed with the new one; `overwrite` (train --overwrite) deletes it."""
        if not self.active:
            return
        folder = prefix_folder(prefix)
        mirror = self.mirror
        if not mirror.has_objects(folder):
            return
        if not overwrite:
            raise MirrorSyncError(f"{mirror.url_of(folder)} already holds a model (kept from an earlier run or VM); "
                                  f"`deepracer models restore {folder.rstrip('/')}` brings it back, set a new "
                                  "DR_LOCAL_S3_MODEL_PREFIX (`deepracer increment` does it), or pass --overwrite to "
                                  "delete it", code="TargetNotEmpty")
        names = [info.name for info in mirror.list(folder)]
        mirror.delete(names)
        say(f"--overwrite: deleted {len(names)} objects under {mirror.url_of(folder)}")

    def keep_everything(self, *, say: Say = console.say) -> list[SyncReport]:
        """Every top-level folder of MinIO's bucket to the mirror: before the VM powers off."""
        if not self.active:
            return []
        return sync_all(self.storage, self.mirror, say=say)


def ensure_in_minio(storage: Storage, mirror: Mirror, prefix: str, *, say: Say = console.say
                    ) -> Optional[SyncReport]:
    """A model prefix restored from the mirror when MinIO holds nothing under its model/ and the mirror holds the
    prefix; None when nothing was to do."""
    folder = prefix_folder(prefix)
    if storage.prefix_has_objects(folder + "model/"):
        return None
    if not mirror.has_objects(folder):
        return None
    say(f"{storage.url(folder)} is not in MinIO: restoring it from {mirror.url_of(folder)}")
    report = restore_prefix_from_mirror(mirror, storage, folder)
    say(report.summary())
    return report


def prefixes_to_sync(containers: Iterable["ContainerInfo"], now: Optional[datetime] = None,
                     recent: timedelta = RECENT_EXIT) -> list[str]:
    """The model prefixes of the host's runs: containers that run, or ended within `recent` (a training that
    reached its end by itself between two timer ticks)."""
    now = now or datetime.now(timezone.utc)
    found = set()
    for container in containers:
        if not container.prefix:
            continue
        if container.running or (container.finished_at is not None and now - container.finished_at <= recent):
            found.add(container.prefix)
    return sorted(found)


def sync_running(system: "SystemConfig", engine: "Engine", storage: Storage, *, mirror: Optional[Mirror] = None,
                 say: Say = console.say, now: Optional[datetime] = None) -> list[SyncReport]:
    """For the timer: the prefixes of the runs on this host (`prefixes_to_sync`) to the mirror. Where nothing is
    kept beyond the working bucket it says so and does nothing."""
    if not has_mirror(system):
        say(f"DR_CLOUD={system.cloud}: the models are in the working bucket already; nothing to sync")
        return []
    prefixes = prefixes_to_sync(engine.list(), now)
    if not prefixes:
        say("no training or evaluation on this host: nothing to sync")
        return []
    return sync_each(storage, mirror or mirror_for(system), prefixes, say)
