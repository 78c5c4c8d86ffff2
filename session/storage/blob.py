"""Models that outlive the VM on Azure: model prefixes mirrored between MinIO and the stack's blob container.

On azure the simulator's S3 is MinIO on this VM, its data on the temp disk (/mnt), which Azure wipes whenever
the VM is deallocated (spot eviction, idle stop, `az vm deallocate`), redeployed or destroyed. The blob container
outlives all of that (the stack keeps the storage account on destroy), so:

- up: a model prefix is copied to blobs of the same names after a stop (`Keeper.keep`), every 10 minutes for
  the runs on the host (`sync_running`, deepracer-blob-sync.timer), and on demand (`deepracer sync-models`);
- down: a prefix the container holds and MinIO lacks comes back when a run starts from it as pretrained or
  resumes it (`Keeper.restore`), and on demand (`deepracer models restore`).

The keeper (session.storage.keeper) decides where models are kept; this module is the sync, and the blob side
of it. The sync takes any `Mirror`: a local machine's copy to S3 is an `S3Mirror` (session.storage.s3_mirror).

Sameness: the size, then the content's SHA-256, kept in blob metadata `sha256` (and on MinIO objects in the
metadata `Storage` writes). A blob also records in `source_etag` the MinIO ETag it was copied from, so an
unchanged object is known from the two listings alone, without reading it. Objects stream through in
BLOCK_SIZE pieces: a checkpoint never sits whole in memory. A blob is committed only when the bytes read match
the source's size (and its MD5 where the ETag is one); a restored object only when they match the blob's
SHA-256. Nothing in Blob is deleted unless `delete=True`; nothing in MinIO is overwritten unless `overwrite=True`.

The VM reaches Blob as its system-assigned managed identity (`ManagedIdentityCredential`, not
DefaultAzureCredential: on the VM that chain would prefer AZURE_* variables or a user's `az login` over the
identity the stack granted, and report failures as a page of attempts), with Storage Blob Data Contributor on
this one container. Every failure leaves as a `BlobSyncError` whose text is one line a user can act on. The
Azure SDK is imported on first use: nothing of it loads on aws.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Protocol, Sequence, TypeVar

from session.core import console
from session.core.console import Say
from session.core.errors import DeepracerError
from session.core.text import human_size
from session.storage.layout import CHECKPOINT_SUFFIXES, CHECKPOINTS_JSON, COACH_CHECKPOINT, HANDOFF_MARKERS
from session.storage.s3 import (
    PART_SIZE,
    SHA256_METADATA,
    ObjectInfo,
    ObjectNotFound,
    Storage,
    StorageError,
    SyncResult,
    run_parallel,
    storage_error,
)

if TYPE_CHECKING:  # pragma: no cover
    from session.core.config import SystemConfig

_T = TypeVar("_T")

BLOB_HOST = "blob.core.windows.net"
ROLE = "Storage Blob Data Contributor"
MANAGED_IDENTITY = "this VM's managed identity"
# system.env keys the stack writes on azure (infra/bootstrap.py); read from `raw` until config.py types them.
ACCOUNT_KEY = "DR_AZURE_STORAGE_ACCOUNT"
CONTAINER_KEY = "DR_AZURE_BLOB_CONTAINER"
SOURCE_ETAG_METADATA = "source_etag"
BLOCK_SIZE = PART_SIZE  # one block staged to Blob, one part uploaded to MinIO: the memory a transfer holds
# The trainer/worker hand-off markers (FORMATS.md §4.3): the state of a run on one VM. Restored on another VM a
# `.lock` would be held by nobody and `.ready`/`.finished` would speak for a run that is not there; a model is
# complete without them (session.models.export leaves them out too).
SYNC_MARKERS = frozenset(f"model/{marker}" for marker in HANDOFF_MARKERS)
# Written last, so the other side never holds a pointer to a checkpoint it lacks (session.models.export does the same).
POINTERS = (f"model/{COACH_CHECKPOINT}", f"model/{CHECKPOINTS_JSON}")
_RANGE_SIZE = 4 * 1024 * 1024
_PARALLEL = 8
_REPORT_LOCK = threading.Lock()  # SyncReport.bytes_copied, added to from the copying threads
_MD5 = re.compile(r"[0-9a-f]{32}")  # a single-part upload's ETag (MinIO without SSE, as minio.py runs it)
_CHECKPOINT_FILE = re.compile(r"model/(\d+)_Step-\d+\.ckpt\.")  # one of a checkpoint's three files
_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")
_CONTAINER = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")
_NOT_AUTHORIZED = frozenset({"AuthorizationPermissionMismatch", "AuthorizationFailure",
                             "AuthorizationResourceTypeMismatch", "AuthorizationSourceIPMismatch",
                             "AuthorizationProtocolMismatch", "AuthorizationServiceMismatch"})


class BlobSyncError(DeepracerError):
    """A failure to keep or restore a model in Blob; `str()` is one line for the user."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(" ".join(message.split()))
        self.code = code


@dataclass(frozen=True)
class BlobInfo:
    name: str
    size: int
    sha256: str = ""  # our metadata: hex digest of the content
    source_etag: str = ""  # our metadata: the MinIO ETag the content was copied from
    content_type: str = ""


@dataclass
class SyncReport(SyncResult):
    """A copy between MinIO and Blob: a SyncResult (its lists by path relative to the prefix, sorted) plus what
    only such a copy meets."""

    conflicts: list[str] = field(default_factory=list)  # restore: different in MinIO, left alone (no overwrite)
    vanished: list[str] = field(default_factory=list)  # listed, then gone before the copy (the trainer prunes)
    skipped: list[str] = field(default_factory=list)  # the run's hand-off markers (SYNC_MARKERS)
    left: list[str] = field(default_factory=list)  # not copied: the deadline passed first (a notice's NotBefore)
    bytes_copied: int = 0

    def summary(self) -> str:
        """One line for people: where to where, and the counts that are not zero."""
        parts = [f"{len(self.transferred)} copied ({human_size(self.bytes_copied)})",
                 f"{len(self.unchanged)} unchanged"]
        for count, text in ((self.conflicts, "different and left alone (--overwrite replaces them)"),
                            (self.vanished, "gone before they could be copied"), (self.deleted, "deleted"),
                            (self.left, "NOT copied: the deadline passed first"),
                            ([] if self.deleted else self.target_only, "only at the target")):
            if count:
                parts.append(f"{len(count)} {text}")
        return f"{self.source} -> {self.target}: {', '.join(parts)}"

    def _sort(self) -> "SyncReport":
        for name in ("added", "changed", "unchanged", "conflicts", "vanished", "skipped", "target_only", "deleted",
                     "left"):
            setattr(self, name, sorted(getattr(self, name)))
        return self


class Mirror(Protocol):
    """Where the sync keeps a copy of MinIO's model prefixes: what it asks of `BlobStore` and `S3Mirror` alike."""

    def url_of(self, name: str = "") -> str: ...

    def list(self, prefix: str = "") -> Iterator["BlobInfo"]: ...

    def has_objects(self, prefix: str) -> bool: ...

    def put_stream(self, name: str, read: Callable[[int], bytes], *, metadata: dict[str, str], content_type: str,
                   verify: Callable[["_Digests"], None]) -> "_Digests": ...

    def chunks(self, name: str) -> Iterator[bytes]: ...

    def set_metadata(self, name: str, metadata: dict[str, str]) -> None: ...

    def delete(self, names: Sequence[str]) -> None: ...


class BlobStore:
    """One blob container. `credential`: anything azure-core takes (a TokenCredential, an account-key dict);
    None means this VM's managed identity. `identity` names who the credential is, for error messages.
    Safe to share between threads."""

    def __init__(self, account_url: str, container: str, credential: Any = None, *,
                 identity: str = MANAGED_IDENTITY, max_attempts: int = 4, connection_verify: Any = None,
                 connect_timeout: float = 10.0, read_timeout: float = 120.0) -> None:
        if not account_url.startswith(("https://", "http://")):
            raise BlobSyncError(f"blob account URL {account_url!r} must start with https://", code="InvalidUrl")
        self.account_url = account_url.rstrip("/")
        self.container = container
        self.identity = identity
        self._credential = credential
        self._options: dict[str, Any] = {
            # Storage's default waits 15 s, then 18 s, 24 s ...; a command should answer sooner than that.
            "retry_total": max(0, max_attempts - 1), "initial_backoff": 2, "increment_base": 2,
            "connection_timeout": connect_timeout, "read_timeout": read_timeout,
            # Uploads go a block per request (put_stream), downloads a range per request: neither direction holds
            # more than a block or two. Ranges of 4 MiB: the SDK briefly reserves 8 bytes per byte of a range.
            "max_single_put_size": BLOCK_SIZE, "max_block_size": BLOCK_SIZE,
            "max_single_get_size": _RANGE_SIZE, "max_chunk_get_size": _RANGE_SIZE,
        }
        if connection_verify is not None:
            self._options["connection_verify"] = connection_verify
        self._lock = threading.Lock()
        self._client: Any = None

    def __repr__(self) -> str:
        return f"BlobStore({self.url!r})"

    @property
    def url(self) -> str:
        return f"{self.account_url}/{self.container}"

    def url_of(self, name: str = "") -> str:
        return f"{self.url}/{name}"

    @property
    def client(self) -> Any:
        """The azure-storage-blob ContainerClient (created on first use)."""
        with self._lock:
            if self._client is None:
                try:
                    import azure.identity
                    import azure.storage.blob  # noqa: F401 - only whether the SDK is installed
                except ImportError:
                    raise BlobSyncError("the Azure SDK is not installed in this Python: pip install "
                                        "'deepracer-cloud[azure-host]' (the azure hosts' bootstrap does)",
                                        code="NoAzureSdk") from None
                with self.errors("connecting"):
                    from azure.storage.blob import ContainerClient

                    credential = self._credential
                    if credential is None:
                        from azure.identity import ManagedIdentityCredential

                        credential = ManagedIdentityCredential()
                    self._client = ContainerClient(self.account_url, self.container, credential=credential,
                                                   **self._options)
            return self._client

    # -- looking ------------------------------------------------------------------------------------------------

    def check(self) -> None:
        """Raise the BlobSyncError a sync would hit first (no container, no role, no network, no token), if any."""
        with self.errors("checking the container"):
            self.client.get_container_properties()

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Every blob whose name starts with `prefix`, with our metadata (from the listing: no request per blob)."""
        with self.errors(f"listing {self.url_of(prefix)}"):
            for item in self.client.list_blobs(name_starts_with=prefix, include=["metadata"]):
                metadata = {key.lower(): value for key, value in (item.metadata or {}).items()}
                settings = item.content_settings
                yield BlobInfo(name=item.name, size=int(item.size or 0), sha256=metadata.get(SHA256_METADATA, ""),
                               source_etag=metadata.get(SOURCE_ETAG_METADATA, ""),
                               content_type=(settings.content_type if settings else "") or "")

    def has_objects(self, prefix: str) -> bool:
        with self.errors(f"listing {self.url_of(prefix)}"):
            for _ in self.client.list_blobs(name_starts_with=prefix, results_per_page=1):
                return True
        return False

    # -- moving -------------------------------------------------------------------------------------------------

    def put_stream(self, name: str, read: Callable[[int], bytes], *, metadata: dict[str, str], content_type: str,
                   verify: Callable[["_Digests"], None]) -> "_Digests":
        """Blob `name` from `read` (called with a size, b"" at the end), one BLOCK_SIZE at a time. `verify` sees
        the digests of everything read before anything is committed; it raises to leave the blob as it was."""
        from azure.storage.blob import BlobBlock, ContentSettings

        digests = _Digests()
        settings = ContentSettings(content_type=content_type or "application/octet-stream")
        with self.errors(f"uploading {self.url_of(name)}"):
            blob = self.client.get_blob_client(name)
            piece = _read_exactly(read, BLOCK_SIZE)
            if len(piece) < BLOCK_SIZE:  # all of it: one request
                digests.update(piece)
                verify(digests)
                blob.upload_blob(piece, length=len(piece), overwrite=True, metadata={**metadata, **digests.metadata},
                                 content_settings=settings, validate_content=True)
                return digests
            # Unique ids per upload: a second upload of the same name at the same time stages blocks of its own.
            stem = uuid.uuid4().hex[:16]
            blocks: list[Any] = []
            while piece:
                block_id = base64.b64encode(f"{stem}-{len(blocks):08d}".encode()).decode()
                digests.update(piece)
                blob.stage_block(block_id, piece, length=len(piece), validate_content=True)
                blocks.append(BlobBlock(block_id=block_id))
                piece = _read_exactly(read, BLOCK_SIZE) if len(piece) == BLOCK_SIZE else b""
            verify(digests)  # uncommitted blocks are dropped by the service after a week
            blob.commit_block_list(blocks, metadata={**metadata, **digests.metadata}, content_settings=settings)
        return digests

    def chunks(self, name: str) -> Iterator[bytes]:
        """The blob's bytes, a range (4 MiB) at a time."""
        with self.errors(f"downloading {self.url_of(name)}"):
            downloader = self.client.get_blob_client(name).download_blob(max_concurrency=1)
            yield from downloader.chunks()

    def set_metadata(self, name: str, metadata: dict[str, str]) -> None:
        with self.errors(f"updating the metadata of {self.url_of(name)}"):
            self.client.get_blob_client(name).set_blob_metadata(metadata)

    def delete(self, names: Sequence[str]) -> None:
        def delete_one(name: str) -> None:
            from azure.core.exceptions import ResourceNotFoundError

            with self.errors(f"deleting {self.url_of(name)}"):
                try:
                    self.client.delete_blob(name)
                except ResourceNotFoundError:
                    pass  # gone already is what we wanted

        _parallel(delete_one, list(names))

    # -- errors -------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (BlobSyncError, StorageError):
            raise
        except Exception as error:  # only the Azure SDK's and the OS's errors are translated
            mapped = self.error(error, doing)
            if mapped is None:
                raise
            raise mapped from None

    def error(self, error: BaseException, doing: str) -> Optional[BlobSyncError]:
        """The one-line BlobSyncError for an azure-core/azure-identity or OS error, or None for anything else."""
        try:
            from azure.core.exceptions import (
                ClientAuthenticationError,
                HttpResponseError,
                ResourceNotFoundError,
                ServiceRequestError,
                ServiceResponseError,
            )
        except ImportError:
            return None
        account = _account_name(self.account_url)
        grant = (f"{self.identity} needs the {ROLE} role on container {self.container} of storage account "
                 f"{account}")
        if isinstance(error, ClientAuthenticationError) and getattr(error, "status_code", None) is None:
            return BlobSyncError(f"cannot get a token for Azure Storage as {self.identity} while {doing}: "
                                 f"{_first_line(error)}; the VM needs its system-assigned identity (the stack enables "
                                 f"it) and the instance metadata service at 169.254.169.254 reachable",
                                 code="NoToken")
        if isinstance(error, HttpResponseError):
            code = _code(error)
            status = error.status_code or 0
            if isinstance(error, ResourceNotFoundError) and code == "ContainerNotFound":
                return BlobSyncError(f"container {self.container} does not exist in storage account {account} "
                                     f"({doing}): check {CONTAINER_KEY} in system.env and that the stack is deployed",
                                     code=code)
            if isinstance(error, ResourceNotFoundError) and code == "BlobNotFound":
                return BlobSyncError(f"{doing}: the blob does not exist", code=code)
            if code in _NOT_AUTHORIZED or status == 403 or isinstance(error, ClientAuthenticationError):
                settling = (" (a new role assignment takes a few minutes to apply)"
                            if code == "AuthorizationPermissionMismatch" else "")
                return BlobSyncError(f"{self.url} refused {doing} ({code or status}): {grant}{settling}",
                                     code=code or "AccessDenied")
            if status >= 500 or status in (408, 429):
                return BlobSyncError(f"{self.url} kept failing ({code or status}: {_first_line(error)}) while {doing}; "
                                     "try again in a minute", code=code or str(status))
            return BlobSyncError(f"{self.url} refused {doing}: {code or status}: {_first_line(error)}",
                                 code=code or str(status))
        if isinstance(error, (ServiceRequestError, ServiceResponseError)):
            what = "did not answer in time" if isinstance(error, ServiceResponseError) else "cannot be reached"
            return BlobSyncError(f"the blob endpoint {self.account_url} {what} while {doing}: check {ACCOUNT_KEY} in "
                                 f"system.env and this VM's outbound network ({_first_line(error)[:200]})",
                                 code="EndpointUnreachable")
        if isinstance(error, OSError):
            return BlobSyncError(f"local error while {doing}: {error.strerror or error}", code="LocalFile")
        return None


class _Digests:
    """SHA-256 (our metadata), MD5 (the ETag of a single-part S3 upload) and the byte count of a stream."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def update(self, data: bytes) -> None:
        self.sha256.update(data)
        self.md5.update(data)
        self.size += len(data)

    @property
    def metadata(self) -> dict[str, str]:
        return {SHA256_METADATA: self.sha256.hexdigest()}


# -- system.env -> BlobStore ----------------------------------------------------------------------------------

def is_azure(system: "SystemConfig") -> bool:
    return system.cloud == "azure"


def account_url(account: str) -> str:
    return f"https://{account}.{BLOB_HOST}"


def blob_store_for(system: "SystemConfig", *, url: Optional[str] = None, credential: Any = None,
                   **options: Any) -> BlobStore:
    """The stack's blob container as system.env names it, reached as this VM's managed identity. `url` and
    `credential` replace the account's endpoint and the identity (tests: Azurite and its account key)."""
    account = (system.raw.get(ACCOUNT_KEY) or "").strip()
    container = (system.raw.get(CONTAINER_KEY) or "").strip()
    missing = [key for key, value in ((ACCOUNT_KEY, account), (CONTAINER_KEY, container)) if not value]
    if missing:
        raise BlobSyncError(f"{' and '.join(missing)}: expected the stack's storage account and blob container in "
                            f"system.env on DR_CLOUD={system.cloud}, got none (redeploy with `pulumi up --stack "
                            "azure`, which writes them)", code="NotConfigured")
    if not _ACCOUNT.fullmatch(account):
        raise BlobSyncError(f"{ACCOUNT_KEY}: expected a storage account name (3-24 lowercase letters and digits), "
                            f"got {account!r}", code="NotConfigured")
    if not _CONTAINER.fullmatch(container):
        raise BlobSyncError(f"{CONTAINER_KEY}: expected a blob container name (3-63 lowercase letters, digits and "
                            f"single hyphens), got {container!r}", code="NotConfigured")
    return BlobStore(url or account_url(account), container, credential, **options)


# -- MinIO -> Blob --------------------------------------------------------------------------------------------

def sync_prefix_to_blob(storage: Storage, blob: Mirror, prefix: str, *, delete: bool = False,
                        deadline: Optional[datetime] = None,
                        now: Optional[Callable[[], datetime]] = None) -> SyncReport:
    """Copy the new and changed objects of a model prefix from MinIO to blobs of the same names.

    Blobs the prefix no longer holds in MinIO (checkpoints the trainer pruned, say) stay unless `delete`. An
    object that disappears between the listing and its copy is reported as vanished, not an error: the trainer
    prunes while the timer syncs. What a resume needs goes first (`copy_order`): the checkpoints, the newest
    complete one first, then the rest of `model/`, its pointers last (a second listing of `model/` first catches
    the checkpoint files written meanwhile, so the blobs' pointers name checkpoints the blobs have), then logs
    and the rest. With a `deadline` (UTC; `now` tells the time) no copy starts after it: what was not copied is
    reported as `left`, and the pointers are copied only when every other file of `model/` was.
    """
    folder = _folder(prefix)
    clock = now or (lambda: datetime.now(timezone.utc))
    report = SyncReport(source=storage.url(folder), target=blob.url_of(folder))
    seen = _objects(storage, folder, report)

    def expired() -> bool:
        return deadline is not None and clock() >= deadline

    if expired():
        report.left = sorted(seen)
        return report._sort()
    blobs = {info.name[len(folder):]: info for info in blob.list(folder)}
    if delete and blobs and not seen:
        raise BlobSyncError(f"{storage.url(folder)} holds nothing: refusing to delete its {len(blobs)} blobs under "
                            f"{blob.url_of(folder)} (`deepracer models restore {folder.rstrip('/')}` brings them back)",
                            code="EmptySource")

    def copy_up(rel: str) -> None:
        if expired():
            with _REPORT_LOCK:
                report.left.append(rel)
            return
        _copy_up(storage, blob, folder, rel, seen[rel], blobs.get(rel), report)

    checkpoints, model, rest = copy_order(seen)
    for group in (*checkpoints, model):
        _parallel(copy_up, group)
    latest = _objects(storage, folder + "model/", None, base=folder)
    newer = sorted(rel for rel in latest if rel not in seen and rel not in POINTERS)
    seen.update(latest)
    _parallel(copy_up, newer)
    model_left = any(rel.startswith("model/") for rel in report.left)
    for rel in POINTERS:
        if rel in seen:
            if model_left:
                report.left.append(rel)
            else:
                copy_up(rel)
    _parallel(copy_up, rest)
    report.target_only = sorted(set(blobs) - set(seen))
    if delete and report.target_only:
        blob.delete([folder + rel for rel in report.target_only])
        report.deleted = list(report.target_only)
    return report._sort()


def copy_order(rels: Iterable[str]) -> tuple[list[list[str]], list[str], list[str]]:
    """A prefix's files (relative paths) in the order a stop with a deadline copies them: the checkpoints' files
    in groups, the newest complete checkpoint first, then the other checkpoints newest first; then the other
    files of `model/` (pointers left out: they go after all of them); then the rest, logs first."""
    by_number: dict[int, list[str]] = {}
    model: list[str] = []
    logs: list[str] = []
    rest: list[str] = []
    for rel in sorted(rels):
        match = _CHECKPOINT_FILE.match(rel)
        if match:
            by_number.setdefault(int(match[1]), []).append(rel)
        elif rel in POINTERS:
            continue
        elif rel.startswith("model/"):
            model.append(rel)
        else:
            (logs if rel.startswith("logs/") else rest).append(rel)

    def complete(files: list[str]) -> bool:
        return all(any(rel.endswith(suffix) for rel in files) for suffix in CHECKPOINT_SUFFIXES)

    numbers = sorted(by_number, reverse=True)
    newest = next((number for number in numbers if complete(by_number[number])), None)
    groups = [by_number[newest]] if newest is not None else []
    others = [rel for number in numbers if number != newest for rel in by_number[number]]
    return [*groups, *([others] if others else [])], model, logs + rest


def _copy_up(storage: Storage, blob: Mirror, folder: str, rel: str, source: ObjectInfo,
             existing: Optional[BlobInfo], report: SyncReport) -> None:
    key = folder + rel
    if existing is not None and existing.size == source.size:
        if source.etag and existing.source_etag == source.etag:
            report.unchanged.append(rel)
            return
        try:
            stat = storage.stat(key)
        except ObjectNotFound:
            report.vanished.append(rel)
            return
        if stat.sha256 and stat.sha256 == existing.sha256:
            # Same content from another MinIO object (a restore wrote it): remember this one, skip the reread.
            blob.set_metadata(key, {SHA256_METADATA: stat.sha256, SOURCE_ETAG_METADATA: stat.etag})
            report.unchanged.append(rel)
            return
    with _s3_errors(storage, f"reading {storage.url(key)}", key):
        try:
            response = storage.client.get_object(Bucket=storage.bucket, Key=key)
        except Exception as error:  # only "no such key" is expected here
            if _is_missing(error):
                report.vanished.append(rel)
                return
            raise
    body = response["Body"]
    length = int(response.get("ContentLength", 0))
    etag = (response.get("ETag") or "").strip('"')

    def read(size: int) -> bytes:
        with _s3_errors(storage, f"reading {storage.url(key)}", key):
            return body.read(size)

    def verify(digests: _Digests) -> None:
        if digests.size != length:
            raise BlobSyncError(f"read {digests.size} bytes of {storage.url(key)} instead of {length}; "
                                f"{blob.url_of(key)} left as it was, try again", code="ChecksumMismatch")
        if _MD5.fullmatch(etag) and digests.md5.hexdigest() != etag:
            raise BlobSyncError(f"{storage.url(key)} read back with MD5 {digests.md5.hexdigest()[:12]}…, its ETag "
                                f"says {etag[:12]}…; {blob.url_of(key)} left as it was, try again",
                                code="ChecksumMismatch")

    try:
        blob.put_stream(key, read, metadata={SOURCE_ETAG_METADATA: etag}, verify=verify,
                        content_type=response.get("ContentType") or "")
    finally:
        body.close()
    (report.changed if existing is not None else report.added).append(rel)
    with _REPORT_LOCK:
        report.bytes_copied += length


# -- Blob -> MinIO --------------------------------------------------------------------------------------------

def restore_prefix_from_blob(blob: Mirror, storage: Storage, prefix: str, *,
                             overwrite: bool = False) -> SyncReport:
    """Copy a prefix's blobs that MinIO lacks back into MinIO, with the sha256 metadata `Storage` writes.

    An object MinIO holds with other content is left alone and reported as a conflict unless `overwrite`. Every
    object is checked against the blob's SHA-256 before it appears: a mismatch leaves MinIO as it was.
    """
    folder = _folder(prefix)
    report = SyncReport(source=blob.url_of(folder), target=storage.url(folder))
    blobs: dict[str, BlobInfo] = {}
    for info in blob.list(folder):
        rel = info.name[len(folder):]
        if rel in SYNC_MARKERS:
            report.skipped.append(rel)
        elif rel and not rel.endswith("/"):
            blobs[rel] = info
    if not blobs:
        raise BlobSyncError(f"nothing to restore: {blob.url_of(folder)} holds no blobs (`deepracer sync-models` "
                            "keeps a prefix there)", code="NothingToRestore")
    objects = {info.key[len(folder):]: info for info in storage.list_objects(folder)}

    def copy_down(rel: str) -> None:
        _copy_down(blob, storage, folder, rel, blobs[rel], objects.get(rel), overwrite, report)

    _parallel(copy_down, [rel for rel in sorted(blobs) if rel not in POINTERS])
    for rel in POINTERS:
        if rel in blobs:
            copy_down(rel)
    report.target_only = sorted(set(objects) - set(blobs))
    return report._sort()


def _copy_down(blob: Mirror, storage: Storage, folder: str, rel: str, source: BlobInfo,
               existing: Optional[ObjectInfo], overwrite: bool, report: SyncReport) -> None:
    key = folder + rel
    if existing is not None:
        same = existing.size == source.size and (
            bool(source.source_etag) and existing.etag == source.source_etag
            or bool(source.sha256) and storage.stat(key).sha256 == source.sha256)
        if same:
            report.unchanged.append(rel)
            return
        if not overwrite:
            report.conflicts.append(rel)
            return
    pieces = blob.chunks(key)

    def verify(digests: _Digests) -> None:
        actual = digests.sha256.hexdigest()
        if digests.size != source.size or (source.sha256 and actual != source.sha256):
            raise BlobSyncError(f"{blob.url_of(key)} read back as {digests.size} bytes with SHA-256 "
                                f"{actual[:12]}…, its listing says {source.size} bytes and "
                                f"{source.sha256[:12] or 'no SHA-256'}…; {storage.url(key)} left as it was",
                                code="ChecksumMismatch")

    metadata = {SHA256_METADATA: source.sha256} if source.sha256 else {}
    _put_object(storage, key, _Reader(pieces), metadata, source.content_type, verify)
    (report.changed if existing is not None else report.added).append(rel)
    with _REPORT_LOCK:
        report.bytes_copied += source.size


def _put_object(storage: Storage, key: str, reader: "_Reader", metadata: dict[str, str], content_type: str,
                verify: Callable[[_Digests], None]) -> None:
    """An S3 object from `reader`, one PART_SIZE at a time (multipart above it, so its ETag is what `Storage`
    uploads get); `verify` runs before the object is completed, and an error aborts the upload. A single-part
    object also gets the SHA-256 of what was read; a multipart one only what `metadata` says."""
    client, bucket = storage.client, storage.bucket
    extra: dict[str, Any] = {"Metadata": metadata, "ContentType": content_type or "application/octet-stream"}
    doing = f"writing {storage.url(key)}"
    piece = reader.read(PART_SIZE)
    if len(piece) < PART_SIZE:  # all of it: one request, with the digest of what was read
        verify(reader.digests)
        extra["Metadata"] = {**metadata, **reader.digests.metadata}
        with _s3_errors(storage, doing, key):
            client.put_object(Bucket=bucket, Key=key, Body=piece, **extra)
        return
    with _s3_errors(storage, doing, key):
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
    try:
        parts: list[dict[str, Any]] = []
        while piece:
            with _s3_errors(storage, doing, key):
                response = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=len(parts) + 1,
                                              Body=piece)
            parts.append({"PartNumber": len(parts) + 1, "ETag": response["ETag"]})
            piece = reader.read(PART_SIZE) if len(piece) == PART_SIZE else b""
        verify(reader.digests)
        with _s3_errors(storage, doing, key):
            client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                             MultipartUpload={"Parts": parts})
    except BaseException:
        with contextlib.suppress(Exception):
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise


class _Reader:
    """`read(size)` over an iterator of chunks, hashing what passes."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self._done = False
        self.digests = _Digests()

    def read(self, size: int) -> bytes:
        while len(self._buffer) < size and not self._done:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._done = True
            else:
                self._buffer += chunk
        with memoryview(self._buffer) as view:
            data = bytes(view[:size])
        del self._buffer[:size]
        self.digests.update(data)
        return data


def sync_all(storage: Storage, blob: Mirror, *, delete: bool = False, say: Say = console.say) -> list[SyncReport]:
    """Every top-level folder of MinIO's bucket (models, custom_files ...) to Blob: before the VM goes away."""
    return _sync_each(storage, blob, storage.list_prefixes(""), say, delete=delete)


def _sync_each(storage: Storage, blob: Mirror, prefixes: Sequence[str], say: Say, delete: bool = False,
               deadline: Optional[datetime] = None, now: Optional[Callable[[], datetime]] = None) -> list[SyncReport]:
    reports = []
    for prefix in prefixes:
        report = sync_prefix_to_blob(storage, blob, prefix, delete=delete, deadline=deadline, now=now)
        say(report.summary())
        reports.append(report)
    return reports


# -- helpers --------------------------------------------------------------------------------------------------

def _folder(prefix: str) -> str:
    folder = prefix.strip("/")
    if not folder:
        raise BlobSyncError("name a model prefix (e.g. rl-deepracer-sagemaker): syncing a whole bucket is not "
                            "what this does", code="NoPrefix")
    return folder + "/"


def _objects(storage: Storage, folder: str, report: Optional[SyncReport], base: Optional[str] = None
             ) -> dict[str, ObjectInfo]:
    """The objects under `folder` by path relative to `base` (default `folder`); markers go to report.skipped."""
    base = folder if base is None else base
    found: dict[str, ObjectInfo] = {}
    for info in storage.list_objects(folder):
        rel = info.key[len(base):]
        if not rel or rel.endswith("/"):
            continue  # a "folder" placeholder some consoles create
        if rel in SYNC_MARKERS:
            if report is not None:
                report.skipped.append(rel)
            continue
        found[rel] = info
    return found


@contextlib.contextmanager
def _s3_errors(storage: Storage, doing: str, key: str) -> Iterator[None]:
    try:
        yield
    except (StorageError, BlobSyncError):
        raise
    except Exception as error:  # only botocore's and the OS's errors are translated
        mapped = storage_error(error, doing, bucket=storage.bucket, key=key, region=storage.region,
                               endpoint_url=storage.endpoint_url, access_key=storage.access_key,
                               max_attempts=storage.max_attempts)
        if mapped is None:
            raise
        raise mapped from None


def _is_missing(error: BaseException) -> bool:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) in ("NoSuchKey", "404", "NotFound")


def _read_exactly(read: Callable[[int], bytes], size: int) -> bytes:
    """Up to `size` bytes: fewer only at the end (a socket read may return less than asked)."""
    pieces, got = [], 0
    while got < size:
        piece = read(size - got)
        if not piece:
            break
        pieces.append(piece)
        got += len(piece)
    return b"".join(pieces)


def _parallel(work: Callable[[str], _T], items: list[str]) -> list[_T]:
    return run_parallel(work, items, _PARALLEL)


def _account_name(url: str) -> str:
    host = url.split("://", 1)[-1].split("/", 1)
    if host[0].endswith("." + BLOB_HOST):
        return host[0].split(".", 1)[0]
    return host[1].split("/", 1)[0] if len(host) > 1 and host[1] else host[0]  # path style (Azurite)


def _code(error: Any) -> str:
    code = getattr(error, "error_code", None)
    return str(getattr(code, "value", code)) if code else ""


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "message", None) or error).strip()
    return text.splitlines()[0].strip() if text else type(error).__name__
