"""Model prefixes mirrored between MinIO and a `Mirror`: the stack's blob container on Azure (session.storage.blob),
or a local machine's copy in S3 (session.storage.s3_mirror).

Where models must outlive the VM (Azure's temp disk, a local machine's disk), the sync keeps them in a mirror:

- up: a model prefix is copied to blobs of the same names after a stop (`Keeper.keep`), every 10 minutes for
  the runs on the host (`sync_running`, deepracer-blob-sync.timer), and on demand (`deepracer sync-models`);
- down: a prefix the container holds and MinIO lacks comes back when a run starts from it as pretrained or
  resumes it (`Keeper.restore`), and on demand (`deepracer models restore`).

The keeper (session.storage.keeper) decides where models are kept and when; this module is the sync.

Sameness: the size, then the content's SHA-256, kept in blob metadata `sha256` (and on MinIO objects in the
metadata `Storage` writes). A blob also records in `source_etag` the MinIO ETag it was copied from, so an
unchanged object is known from the two listings alone, without reading it. Objects stream through in
BLOCK_SIZE pieces: a checkpoint never sits whole in memory. A blob is committed only when the bytes read match
the source's size (and its MD5 where the ETag is one); a restored object only when they match the blob's
SHA-256. Nothing in Blob is deleted unless `delete=True`; nothing in MinIO is overwritten unless `overwrite=True`.

Every failure leaves as a `MirrorSyncError` whose text is one line a user can act on.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Optional, Protocol, Sequence, TypeVar

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

_T = TypeVar("_T")

SOURCE_ETAG_METADATA = "source_etag"

BLOCK_SIZE = PART_SIZE  # one block staged to Blob, one part uploaded to MinIO: the memory a transfer holds

# The trainer/worker hand-off markers (FORMATS.md §4.3): the state of a run on one VM. Restored on another VM a
# `.lock` would be held by nobody and `.ready`/`.finished` would speak for a run that is not there; a model is
# complete without them (session.models.export leaves them out too).
SYNC_MARKERS = frozenset(f"model/{marker}" for marker in HANDOFF_MARKERS)

# Written last, so the other side never holds a pointer to a checkpoint it lacks (session.models.export does the same).
POINTERS = (f"model/{COACH_CHECKPOINT}", f"model/{CHECKPOINTS_JSON}")

_PARALLEL = 8

_REPORT_LOCK = threading.Lock()  # SyncReport.bytes_copied, added to from the copying threads

_MD5 = re.compile(r"[0-9a-f]{32}")  # a single-part upload's ETag (MinIO without SSE, as minio.py runs it)

_CHECKPOINT_FILE = re.compile(r"model/(\d+)_Step-\d+\.ckpt\.")  # one of a checkpoint's three files


class MirrorSyncError(DeepracerError):
    """A failure to keep or restore a model in its mirror (Blob, or a copy bucket); `str()` is one line for the user."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(" ".join(message.split()))
        self.code = code


@dataclass(frozen=True)
class MirrorObject:
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

    def list(self, prefix: str = "") -> Iterator["MirrorObject"]: ...

    def has_objects(self, prefix: str) -> bool: ...

    def put_stream(self, name: str, read: Callable[[int], bytes], *, metadata: dict[str, str], content_type: str,
                   verify: Callable[["Digests"], None]) -> "Digests": ...

    def chunks(self, name: str) -> Iterator[bytes]: ...

    def set_metadata(self, name: str, metadata: dict[str, str]) -> None: ...

    def delete(self, names: Sequence[str]) -> None: ...


class Digests:
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


# -- MinIO -> mirror ----------------------------------------------------------------------------------------

def sync_prefix_to_mirror(storage: Storage, mirror: Mirror, prefix: str, *, delete: bool = False,
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
    folder = prefix_folder(prefix)
    clock = now or (lambda: datetime.now(timezone.utc))
    report = SyncReport(source=storage.url(folder), target=mirror.url_of(folder))
    seen = _objects(storage, folder, report)

    def expired() -> bool:
        return deadline is not None and clock() >= deadline

    if expired():
        report.left = sorted(seen)
        return report._sort()
    blobs = {info.name[len(folder):]: info for info in mirror.list(folder)}
    if delete and blobs and not seen:
        raise MirrorSyncError(f"{storage.url(folder)} holds nothing: refusing to delete its {len(blobs)} blobs "
                              f"under {mirror.url_of(folder)} (`deepracer models restore {folder.rstrip('/')}` brings "
                              "them back)", code="EmptySource")

    def copy_up(rel: str) -> None:
        if expired():
            with _REPORT_LOCK:
                report.left.append(rel)
            return
        _copy_up(storage, mirror, folder, rel, seen[rel], blobs.get(rel), report)

    checkpoints, model, rest = copy_order(seen)
    for group in (*checkpoints, model):
        parallel(copy_up, group)
    latest = _objects(storage, folder + "model/", None, base=folder)
    newer = sorted(rel for rel in latest if rel not in seen and rel not in POINTERS)
    seen.update(latest)
    parallel(copy_up, newer)
    model_left = any(rel.startswith("model/") for rel in report.left)
    for rel in POINTERS:
        if rel in seen:
            if model_left:
                report.left.append(rel)
            else:
                copy_up(rel)
    parallel(copy_up, rest)
    report.target_only = sorted(set(blobs) - set(seen))
    if delete and report.target_only:
        mirror.delete([folder + rel for rel in report.target_only])
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


def _copy_up(storage: Storage, mirror: Mirror, folder: str, rel: str, source: ObjectInfo,
             existing: Optional[MirrorObject], report: SyncReport) -> None:
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
            mirror.set_metadata(key, {SHA256_METADATA: stat.sha256, SOURCE_ETAG_METADATA: stat.etag})
            report.unchanged.append(rel)
            return
    with s3_errors(storage, f"reading {storage.url(key)}", key):
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
        with s3_errors(storage, f"reading {storage.url(key)}", key):
            return body.read(size)

    def verify(digests: Digests) -> None:
        if digests.size != length:
            raise MirrorSyncError(f"read {digests.size} bytes of {storage.url(key)} instead of {length}; "
                                  f"{mirror.url_of(key)} left as it was, try again", code="ChecksumMismatch")
        if _MD5.fullmatch(etag) and digests.md5.hexdigest() != etag:
            raise MirrorSyncError(f"{storage.url(key)} read back with MD5 {digests.md5.hexdigest()[:12]}…, its ETag "
                                  f"says {etag[:12]}…; {mirror.url_of(key)} left as it was, try again",
                                  code="ChecksumMismatch")

    try:
        mirror.put_stream(key, read, metadata={SOURCE_ETAG_METADATA: etag}, verify=verify,
                        content_type=response.get("ContentType") or "")
    finally:
        body.close()
    (report.changed if existing is not None else report.added).append(rel)
    with _REPORT_LOCK:
        report.bytes_copied += length


# -- mirror -> MinIO ----------------------------------------------------------------------------------------

def restore_prefix_from_mirror(mirror: Mirror, storage: Storage, prefix: str, *,
                               overwrite: bool = False) -> SyncReport:
    """Copy a prefix's blobs that MinIO lacks back into MinIO, with the sha256 metadata `Storage` writes.

    An object MinIO holds with other content is left alone and reported as a conflict unless `overwrite`. Every
    object is checked against the blob's SHA-256 before it appears: a mismatch leaves MinIO as it was.
    """
    folder = prefix_folder(prefix)
    report = SyncReport(source=mirror.url_of(folder), target=storage.url(folder))
    blobs: dict[str, MirrorObject] = {}
    for info in mirror.list(folder):
        rel = info.name[len(folder):]
        if rel in SYNC_MARKERS:
            report.skipped.append(rel)
        elif rel and not rel.endswith("/"):
            blobs[rel] = info
    if not blobs:
        raise MirrorSyncError(f"nothing to restore: {mirror.url_of(folder)} holds no blobs (`deepracer sync-models` "
                              "keeps a prefix there)", code="NothingToRestore")
    objects = {info.key[len(folder):]: info for info in storage.list_objects(folder)}

    def copy_down(rel: str) -> None:
        _copy_down(mirror, storage, folder, rel, blobs[rel], objects.get(rel), overwrite, report)

    parallel(copy_down, [rel for rel in sorted(blobs) if rel not in POINTERS])
    for rel in POINTERS:
        if rel in blobs:
            copy_down(rel)
    report.target_only = sorted(set(objects) - set(blobs))
    return report._sort()


def _copy_down(mirror: Mirror, storage: Storage, folder: str, rel: str, source: MirrorObject,
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
    pieces = mirror.chunks(key)

    def verify(digests: Digests) -> None:
        actual = digests.sha256.hexdigest()
        if digests.size != source.size or (source.sha256 and actual != source.sha256):
            raise MirrorSyncError(f"{mirror.url_of(key)} read back as {digests.size} bytes with SHA-256 "
                                  f"{actual[:12]}…, its listing says {source.size} bytes and "
                                  f"{source.sha256[:12] or 'no SHA-256'}…; {storage.url(key)} left as it was",
                                  code="ChecksumMismatch")

    metadata = {SHA256_METADATA: source.sha256} if source.sha256 else {}
    put_object(storage, key, Reader(pieces), metadata, source.content_type, verify)
    (report.changed if existing is not None else report.added).append(rel)
    with _REPORT_LOCK:
        report.bytes_copied += source.size


def put_object(storage: Storage, key: str, reader: "Reader", metadata: dict[str, str], content_type: str,
                verify: Callable[[Digests], None]) -> None:
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
        with s3_errors(storage, doing, key):
            client.put_object(Bucket=bucket, Key=key, Body=piece, **extra)
        return
    with s3_errors(storage, doing, key):
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
    try:
        parts: list[dict[str, Any]] = []
        while piece:
            with s3_errors(storage, doing, key):
                response = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=len(parts) + 1,
                                              Body=piece)
            parts.append({"PartNumber": len(parts) + 1, "ETag": response["ETag"]})
            piece = reader.read(PART_SIZE) if len(piece) == PART_SIZE else b""
        verify(reader.digests)
        with s3_errors(storage, doing, key):
            client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                             MultipartUpload={"Parts": parts})
    except BaseException:
        with contextlib.suppress(Exception):
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise


class Reader:
    """`read(size)` over an iterator of chunks, hashing what passes."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self._done = False
        self.digests = Digests()

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


def sync_all(storage: Storage, mirror: Mirror, *, delete: bool = False, say: Say = console.say) -> list[SyncReport]:
    """Every top-level folder of MinIO's bucket (models, custom_files ...) to Blob: before the VM goes away."""
    return sync_each(storage, mirror, storage.list_prefixes(""), say, delete=delete)


def sync_each(storage: Storage, mirror: Mirror, prefixes: Sequence[str], say: Say, delete: bool = False,
               deadline: Optional[datetime] = None, now: Optional[Callable[[], datetime]] = None) -> list[SyncReport]:
    reports = []
    for prefix in prefixes:
        report = sync_prefix_to_mirror(storage, mirror, prefix, delete=delete, deadline=deadline, now=now)
        say(report.summary())
        reports.append(report)
    return reports


# -- helpers --------------------------------------------------------------------------------------------------

def prefix_folder(prefix: str) -> str:
    folder = prefix.strip("/")
    if not folder:
        raise MirrorSyncError("name a model prefix (e.g. rl-deepracer-sagemaker): syncing a whole bucket is not "
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
def s3_errors(storage: Storage, doing: str, key: str) -> Iterator[None]:
    try:
        yield
    except (StorageError, MirrorSyncError):
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


def read_exactly(read: Callable[[int], bytes], size: int) -> bytes:
    """Up to `size` bytes: fewer only at the end (a socket read may return less than asked)."""
    pieces, got = [], 0
    while got < size:
        piece = read(size - got)
        if not piece:
            break
        pieces.append(piece)
        got += len(piece)
    return b"".join(pieces)


def parallel(work: Callable[[str], _T], items: list[str]) -> list[_T]:
    return run_parallel(work, items, _PARALLEL)


def first_line(error: BaseException) -> str:
    text = str(getattr(error, "message", None) or error).strip()
    return text.splitlines()[0].strip() if text else type(error).__name__
