"""Objects, files and folders in one bucket over the S3 API: AWS S3 through the instance role, MinIO by endpoint.

AWS: no keys anywhere; botocore's default chain finds the instance role through IMDS. MinIO (azure and local hosts):
an endpoint URL plus an access key and secret. Values come in as arguments; this module reads no config.

Folders are key prefixes ending in "/": `rl-1` and `rl-1/` name the same folder, which never includes `rl-10/`.
Every failure of S3, the network or a local file leaves as a `StorageError` whose text is one line a user can
act on. botocore is imported on first use, so commands that never touch storage start fast.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fnmatch
import hashlib
import json
import os
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence, TypeVar, Union

from session.core.errors import DeepracerError

if TYPE_CHECKING:  # pragma: no cover
    from botocore.client import BaseClient

Progress = Callable[[int], None]
"""Called with the number of bytes just moved (negative when a failed part is retried); threads may call it."""
PathLike = Union[str, "os.PathLike[str]"]

MiB = 1024 * 1024
# boto3's and the aws CLI's default part size: with it the ETag of their multipart uploads can be recomputed.
PART_SIZE = 8 * MiB
SHA256_METADATA = "sha256"  # x-amz-meta-sha256: hex digest of the whole object, written by every upload here
MAX_COPY_SIZE = 5 * 1024 ** 3  # CopyObject's limit
_DELETE_BATCH = 1000  # DeleteObjects' limit
_PARALLEL_FILES = 8
_TEMP_MARK = ".deepracer-part"  # in names of partial downloads; never synced
# Python's bytecode caches: what the user's Python (an editor, a test run) left beside their files is never
# synced either way (the simulator compiles the reward function itself; an older version's upload may have put
# some in the bucket).
NEVER_SYNCED = ("__pycache__/*", "*/__pycache__/*", "*.pyc", "*.pyo")

_T = TypeVar("_T")


class StorageError(DeepracerError):
    """A storage failure; `str()` is one line for the user. `code` is the S3 error code or the error's kind."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(" ".join(message.split()))
        self.code = code


class ObjectNotFound(StorageError):
    """The key (or the folder) holds nothing."""


class TargetNotEmpty(StorageError):
    """A copy would overwrite objects and overwriting was not allowed."""


class ChecksumMismatch(StorageError):
    """Bytes moved but arrived different: a transfer or a copy failed its verification."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str = ""  # without quotes; "<md5>-<parts>" for multipart uploads
    last_modified: Optional[datetime] = None
    sha256: str = ""  # from our metadata; only `stat` reads it (listings do not return metadata)


@dataclass
class SyncResult:
    """What a sync found and did, by path relative to the folders; every list is sorted."""

    source: str
    target: str
    added: list[str] = field(default_factory=list)  # only at the source: transferred
    changed: list[str] = field(default_factory=list)  # different content at the target: transferred
    unchanged: list[str] = field(default_factory=list)
    target_only: list[str] = field(default_factory=list)  # remote-only (sync_up) or local-only (sync_down)
    deleted: list[str] = field(default_factory=list)  # the part of target_only removed (delete=True only)
    bytes_to_transfer: int = 0
    dry_run: bool = False

    @property
    def transferred(self) -> list[str]:
        """Paths transferred (or, in a dry run, to be transferred)."""
        return sorted(self.added + self.changed)

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.changed or self.deleted)


@dataclass
class CopyResult:
    source: str
    target: str
    copied: list[str] = field(default_factory=list)  # relative keys, sorted
    verified: list[str] = field(default_factory=list)  # size and a checksum matched
    size_only: list[str] = field(default_factory=list)  # size matched; no checksum of the source to compare with
    target_only: list[str] = field(default_factory=list)  # already at the target, not in the source: left alone
    bytes_copied: int = 0


@dataclass(frozen=True)
class _Digest:
    sha256: str
    md5: str
    multipart_etag: str  # the ETag of a PART_SIZE multipart upload of the same bytes

    def matches_etag(self, etag: str) -> bool:
        return bool(etag) and etag in (self.md5, self.multipart_etag)


class Storage:
    """One bucket. Safe to share between threads; create it once per command."""

    def __init__(self, bucket: str, region: str = "us-east-1", endpoint_url: Optional[str] = None,
                 access_key: Optional[str] = None, secret_key: Optional[str] = None, *, profile: Optional[str] = None,
                 max_attempts: int = 5, connect_timeout: float = 10.0, read_timeout: float = 60.0) -> None:
        if not bucket or "/" in bucket:
            raise StorageError(f"bucket name {bucket!r} is not valid: expected a bare name like my-deepracer-bucket",
                               code="InvalidBucketName")
        if endpoint_url is not None and not endpoint_url.startswith(("http://", "https://")):
            raise StorageError(f"S3 endpoint URL {endpoint_url!r} must start with http:// or https://",
                               code="InvalidEndpoint")
        if bool(access_key) != bool(secret_key):
            raise StorageError("an S3 access key needs its secret key, and the other way round", code="PartialKeys")
        self.bucket = bucket
        self.region = region
        self.endpoint_url = endpoint_url or None
        self.access_key = access_key or None
        self._secret_key = secret_key or None
        self.profile = profile or None  # a profile of ~/.aws/config (a local machine's copy of its models)
        self.max_attempts = max_attempts
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._lock = threading.Lock()
        self._client: Optional[BaseClient] = None
        self._transfers: Any = None
        self._copy_checksums = True  # cleared if the server refuses to compute a checksum on copy

    def __repr__(self) -> str:
        where = f", endpoint_url={self.endpoint_url!r}" if self.endpoint_url else ""
        return f"Storage(bucket={self.bucket!r}, region={self.region!r}{where})"

    def __enter__(self) -> "Storage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            transfers, self._transfers = self._transfers, None
        if transfers is not None:
            transfers.shutdown()

    @property
    def client(self) -> "BaseClient":
        """The botocore S3 client (created on first use)."""
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def url(self, key: str = "", bucket: Optional[str] = None) -> str:
        return f"s3://{bucket or self.bucket}/{key}"

    # -- looking ------------------------------------------------------------------------------------------------

    def check_bucket(self) -> None:
        """Raise the StorageError a user would hit first (no bucket, no access, no network, bad keys), if any."""
        with self._errors(f"checking bucket {self.bucket}"):
            self.client.head_bucket(Bucket=self.bucket)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def stat(self, key: str) -> ObjectInfo:
        """Size, ETag and the sha256 metadata of one object; ObjectNotFound when there is none."""
        with self._errors(f"reading {self.url(key)}", key=key):
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        return _info_from_head(key, head)

    def list_objects(self, prefix: str = "", *, match: str = "") -> Iterator[ObjectInfo]:
        """Every object under the folder `prefix` (all pages), optionally only names starting with `match`."""
        yield from self._list(self.bucket, _folder(prefix) + match)

    def list_prefixes(self, prefix: str = "") -> list[str]:
        """The sub-folders directly under the folder `prefix`, as full prefixes without the trailing "/"."""
        folder = _folder(prefix)
        found: list[str] = []
        with self._errors(f"listing {self.url(folder)}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=folder, Delimiter="/")
            for page in pages:
                found.extend(entry["Prefix"].rstrip("/") for entry in page.get("CommonPrefixes", []))
        return sorted(found)

    def prefix_has_objects(self, prefix: str) -> bool:
        """Whether the folder holds at least one object (the whole bucket for "")."""
        return self._has_objects(self.bucket, _folder(prefix))

    # -- small objects ------------------------------------------------------------------------------------------

    def get_bytes(self, key: str) -> bytes:
        with self._errors(f"reading {self.url(key)}", key=key):
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            return response["Body"].read()

    def get_text(self, key: str) -> str:
        data = self.get_bytes(key)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise StorageError(f"{self.url(key)} is not UTF-8 text (byte {error.start})", code="NotText") from None

    def get_json(self, key: str) -> Any:
        text = self.get_text(key)
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise StorageError(f"{self.url(key)} is not valid JSON: {error.msg} (line {error.lineno}, "
                               f"column {error.colno})", code="NotJson") from None

    def get_yaml(self, key: str) -> Any:
        import yaml

        text = self.get_text(key)
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error)
            raise StorageError(f"{self.url(key)} is not valid YAML: {problem}{where}", code="NotYaml") from None

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        with self._errors(f"writing {self.url(key)}", key=key):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type,
                                   Metadata={SHA256_METADATA: hashlib.sha256(data).hexdigest()})

    def put_text(self, key: str, text: str, content_type: str = "text/plain; charset=utf-8") -> None:
        self.put_bytes(key, text.encode("utf-8"), content_type)

    def put_json(self, key: str, value: Any) -> None:
        self.put_text(key, json.dumps(value, indent=2) + "\n", "application/json")

    def put_yaml(self, key: str, value: Any) -> None:
        import yaml

        self.put_text(key, yaml.safe_dump(value, default_flow_style=False, sort_keys=False), "application/x-yaml")

    # -- files --------------------------------------------------------------------------------------------------

    def upload_file(self, path: PathLike, key: str, *, progress: Optional[Progress] = None) -> ObjectInfo:
        """Upload one file (multipart above PART_SIZE) with its sha256 in the object's metadata."""
        path = Path(path)
        digest = _digest(path)
        return self._upload(path, key, digest.sha256, progress)

    def download_file(self, key: str, path: PathLike, *, progress: Optional[Progress] = None) -> ObjectInfo:
        """Download one object; the file appears complete or not at all, checked against the sha256 metadata."""
        return self._download(self.stat(key), Path(path), progress)

    # -- folders ------------------------------------------------------------------------------------------------

    def sync_up(self, local_dir: PathLike, prefix: str, *, delete: bool = False, dry_run: bool = False,
                exclude: Sequence[str] = (), progress: Optional[Progress] = None,
                on_total: Optional[Callable[[int], None]] = None) -> SyncResult:
        """Make the folder `prefix` hold the files of `local_dir`: upload new and changed files.

        Objects only in the bucket stay unless `delete`. `exclude`: glob patterns matched against the relative
        path and the file name, besides NEVER_SYNCED (bytecode caches). `on_total` gets the number of bytes to
        upload before the first byte moves.
        A dry run compares and moves nothing; its `target_only` is what `delete` would remove.
        """
        root = Path(local_dir)
        if not root.is_dir():
            raise StorageError(f"local folder {root} does not exist (nothing to upload)", code="NoLocalFolder")
        folder = _folder(prefix)
        local = _local_files(root, (*exclude, *NEVER_SYNCED))
        remote = {_relative(info.key, folder): info for info in self._list(self.bucket, folder)
                  if not info.key.endswith("/")}
        result = SyncResult(source=str(root), target=self.url(folder), dry_run=dry_run)
        digests: dict[str, _Digest] = {}

        def compare(rel: str) -> bool:
            (path, size), info = local[rel], remote[rel]
            if size != info.size:
                return False
            digests[rel] = digest = _digest(path)
            return _same_content(digest, info, lambda: self.stat(info.key))

        self._plan(result, sorted(local), remote, compare, size_of=lambda rel: local[rel][1])
        result.target_only = sorted(set(remote) - set(local))
        if dry_run:
            return result
        if on_total is not None:
            on_total(result.bytes_to_transfer)

        def upload(rel: str) -> None:
            path = local[rel][0]
            digest = digests.get(rel) or _digest(path)
            self._upload(path, folder + rel, digest.sha256, progress)

        _parallel(upload, result.transferred)
        if delete and result.target_only:
            self._delete_keys(self.bucket, [folder + rel for rel in result.target_only])
            result.deleted = list(result.target_only)
        return result

    def sync_down(self, prefix: str, local_dir: PathLike, *, delete: bool = False, dry_run: bool = False,
                  exclude: Sequence[str] = (), progress: Optional[Progress] = None,
                  on_total: Optional[Callable[[int], None]] = None) -> SyncResult:
        """Make `local_dir` hold the objects of the folder `prefix`: download new and changed ones.

        Local files that are not in the bucket stay unless `delete`. Arguments as for `sync_up`.
        """
        root = Path(local_dir)
        folder = _folder(prefix)
        exclude = (*exclude, *NEVER_SYNCED)
        remote: dict[str, ObjectInfo] = {}
        for info in self._list(self.bucket, folder):
            if info.key.endswith("/"):
                continue  # a "folder" placeholder some consoles create
            rel = _relative(info.key, folder)
            if not _excluded(rel, exclude):
                remote[_safe_relative(rel, info.key, self)] = info
        local = _local_files(root, exclude) if root.is_dir() else {}
        result = SyncResult(source=self.url(folder), target=str(root), dry_run=dry_run)
        stats: dict[str, ObjectInfo] = {}

        def compare(rel: str) -> bool:
            (path, size), info = local[rel], remote[rel]
            if size != info.size:
                return False

            def stat() -> ObjectInfo:
                stats[rel] = self.stat(info.key)
                return stats[rel]

            return _same_content(_digest(path), info, stat)

        self._plan(result, sorted(remote), local, compare, size_of=lambda rel: remote[rel].size)
        result.target_only = sorted(set(local) - set(remote))
        if dry_run:
            return result
        if on_total is not None:
            on_total(result.bytes_to_transfer)

        def download(rel: str) -> None:
            info = stats.get(rel) or self.stat(remote[rel].key)
            self._download(info, root / rel, progress)

        _parallel(download, result.transferred)
        if delete:
            for rel in result.target_only:
                path = local[rel][0]
                try:
                    path.unlink()
                except OSError as error:
                    raise _local_error(error, path, "delete") from None
                result.deleted.append(rel)
        return result

    def copy_prefix(self, src_prefix: str, dst_bucket: str, dst_prefix: str, *,
                    overwrite: bool = False) -> CopyResult:
        """Copy every object of a folder to another folder (this or another bucket, same endpoint), server-side.

        Refuses a target folder that holds objects unless `overwrite`; objects there that the source lacks stay.
        Each copy is checked afterwards: same size, and the same SHA-256 (S3 computes the copy's; the source's
        comes from our metadata) or the same single-part ETag; otherwise it counts as `size_only`.
        """
        src, dst = _folder(src_prefix), _folder(dst_prefix)
        src_url, dst_url = self.url(src), self.url(dst, dst_bucket)
        if dst_bucket == self.bucket and (src.startswith(dst) or dst.startswith(src)):
            raise StorageError(f"cannot copy {src_url} to {dst_url}: one folder contains the other",
                               code="OverlappingPrefixes")
        sources = {_relative(info.key, src): info for info in self._list(self.bucket, src)}
        if not sources:
            raise ObjectNotFound(f"nothing to copy: {src_url} holds no objects", code="EmptySource")
        existing = {_relative(info.key, dst) for info in self._list(dst_bucket, dst)}
        if existing and not overwrite:
            raise TargetNotEmpty(f"{dst_url} already holds {len(existing)} object(s); refusing to overwrite them: "
                                 "choose an empty target or allow overwriting", code="TargetNotEmpty")
        result = CopyResult(source=src_url, target=dst_url, target_only=sorted(existing - set(sources)))
        too_big = sorted(rel for rel, info in sources.items() if info.size > MAX_COPY_SIZE)
        if too_big:
            raise StorageError(f"cannot copy {src_url}{too_big[0]} server-side: larger than 5 GiB", code="TooLarge")
        verified: dict[str, bool] = {}

        def copy(rel: str) -> None:
            verified[rel] = self._copy_one(sources[rel], dst_bucket, dst + rel)

        _parallel(copy, sorted(sources))
        result.copied = sorted(sources)
        result.verified = sorted(rel for rel, ok in verified.items() if ok)
        result.size_only = sorted(rel for rel, ok in verified.items() if not ok)
        result.bytes_copied = sum(info.size for info in sources.values())
        return result

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object in the folder; returns how many. Callers reach this only behind an explicit flag."""
        folder = _folder(prefix)
        if not folder:
            raise StorageError(f"refusing to delete everything in bucket {self.bucket}: name a folder",
                               code="WholeBucket")
        keys = [info.key for info in self._list(self.bucket, folder)]
        self._delete_keys(self.bucket, keys)
        return len(keys)

    # -- internals ----------------------------------------------------------------------------------------------

    def _make_client(self) -> "BaseClient":
        import botocore.session
        from botocore.config import Config
        from botocore.loaders import Loader

        options: dict[str, Any] = {
            "region_name": self.region,
            "retries": {"total_max_attempts": self.max_attempts, "mode": "standard"},  # attempts, not retries
            "connect_timeout": self._connect_timeout,
            "read_timeout": self._read_timeout,
            "max_pool_connections": 32,
            "tcp_keepalive": True,
        }
        if self.endpoint_url:
            options["s3"] = {"addressing_style": "path"}  # MinIO serves buckets as paths, not host names
            # S3-compatible servers vary in support of the CRC checksums newer botocore adds to every upload.
            for name in ("request_checksum_calculation", "response_checksum_validation"):
                if name in Config.OPTION_DEFAULTS:
                    options[name] = "when_required"
        # botocore's own session rather than boto3's (which adds resources and ~2.5 MB of modules for nothing
        # here), with the endpoint data of S3 alone: botocore otherwise keeps every AWS service's (~6 MB decoded)
        # for the life of the client; a long-lived reader such as the dashboard pays for it all the time.
        from botocore.exceptions import ProfileNotFound

        session = botocore.session.Session(profile=self.profile)
        session.register_component("data_loader", Loader(file_loader=_make_file_loader()))
        try:
            return session.create_client("s3", region_name=self.region, endpoint_url=self.endpoint_url,
                                         aws_access_key_id=self.access_key, aws_secret_access_key=self._secret_key,
                                         config=Config(**options))
        except ProfileNotFound:
            raise StorageError(f"AWS profile {self.profile!r} is in neither ~/.aws/config nor ~/.aws/credentials of "
                               "this user (`aws configure --profile` makes one)", code="ProfileNotFound") from None

    def _transfer_manager(self) -> Any:
        client = self.client
        with self._lock:
            if self._transfers is None:
                from s3transfer.manager import TransferConfig, TransferManager

                config = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE,
                                        max_request_concurrency=10)
                self._transfers = TransferManager(client, config)
            return self._transfers

    @contextlib.contextmanager
    def _errors(self, doing: str, *, key: Optional[str] = None, bucket: Optional[str] = None) -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except Exception as error:  # only botocore's and the OS's errors are translated
            mapped = storage_error(error, doing, bucket=bucket or self.bucket, key=key, region=self.region,
                                   endpoint_url=self.endpoint_url, access_key=self.access_key,
                                   max_attempts=self.max_attempts)
            if mapped is None:
                raise
            raise mapped from None

    def _list(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        with self._errors(f"listing {self.url(prefix, bucket)}", bucket=bucket):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for page in pages:
                for entry in page.get("Contents", []):
                    yield ObjectInfo(key=entry["Key"], size=int(entry["Size"]), etag=_unquote(entry.get("ETag")),
                                     last_modified=entry.get("LastModified"))

    def _has_objects(self, bucket: str, prefix: str) -> bool:
        with self._errors(f"listing {self.url(prefix, bucket)}", bucket=bucket):
            response = self.client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        return bool(response.get("Contents"))

    def _plan(self, result: SyncResult, sources: list[str], targets: dict[str, Any],
              compare: Callable[[str], bool], size_of: Callable[[str], int]) -> None:
        both = [rel for rel in sources if rel in targets]
        same = dict(zip(both, _parallel(compare, both)))
        for rel in sources:
            if rel not in targets:
                result.added.append(rel)
            elif same[rel]:
                result.unchanged.append(rel)
            else:
                result.changed.append(rel)
        result.bytes_to_transfer = sum(size_of(rel) for rel in result.transferred)

    def _upload(self, path: Path, key: str, sha256: str, progress: Optional[Progress]) -> ObjectInfo:
        try:
            size = path.stat().st_size
        except OSError as error:
            raise _local_error(error, path, "read") from None
        with self._errors(f"uploading {path} to {self.url(key)}", key=key):
            future = self._transfer_manager().upload(
                str(path), self.bucket, key, extra_args={"Metadata": {SHA256_METADATA: sha256}},
                subscribers=_subscribers(progress))
            future.result()
        return ObjectInfo(key=key, size=size, sha256=sha256)

    def _download(self, info: ObjectInfo, path: Path, progress: Optional[Progress]) -> ObjectInfo:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TEMP_MARK)
        except OSError as error:
            raise _local_error(error, path, "write") from None
        temp = Path(temp_name)
        try:
            with os.fdopen(handle, "wb") as stream, \
                    self._errors(f"downloading {self.url(info.key)} to {path}", key=info.key):
                future = self._transfer_manager().download(
                    self.bucket, info.key, stream, subscribers=_subscribers(progress, info))
                future.result()
            if info.sha256:
                actual = _digest(temp).sha256
                if actual != info.sha256:
                    raise ChecksumMismatch(f"downloaded {self.url(info.key)} has SHA-256 {actual[:12]}…, its "
                                           f"metadata says {info.sha256[:12]}…; {path} left as it was, try again",
                                           code="ChecksumMismatch")
            os.replace(temp, path)
        except OSError as error:
            raise _local_error(error, path, "write") from None
        finally:
            temp.unlink(missing_ok=True)
        return info

    def _copy_one(self, source: ObjectInfo, dst_bucket: str, dst_key: str) -> bool:
        """Copy and verify one object; True when a checksum (not only the size) matched."""
        src_url, dst_url = self.url(source.key), self.url(dst_key, dst_bucket)
        src = self.stat(source.key)
        request = {"Bucket": dst_bucket, "Key": dst_key, "CopySource": {"Bucket": self.bucket, "Key": source.key},
                   "MetadataDirective": "COPY"}
        with self._errors(f"copying {src_url} to {dst_url}", bucket=dst_bucket):
            response = self._copy_object(request)
            head = self.client.head_object(Bucket=dst_bucket, Key=dst_key)
        copy = _info_from_head(dst_key, head)
        if copy.size != src.size:
            raise ChecksumMismatch(f"copy of {src_url} at {dst_url} has {copy.size} bytes instead of {src.size}",
                                   code="ChecksumMismatch")
        computed = _hex_from_base64(response.get("CopyObjectResult", {}).get("ChecksumSHA256"))
        if src.sha256 and computed:
            if computed != src.sha256:
                raise ChecksumMismatch(f"copy of {src_url} at {dst_url} has SHA-256 {computed[:12]}…, the source "
                                       f"{src.sha256[:12]}…", code="ChecksumMismatch")
            return True
        if src.etag and "-" not in src.etag and "-" not in copy.etag:
            if copy.etag != src.etag:
                raise ChecksumMismatch(f"copy of {src_url} at {dst_url} has ETag {copy.etag}, the source "
                                       f"{src.etag}", code="ChecksumMismatch")
            return True
        return False

    def _copy_object(self, request: dict[str, Any]) -> dict[str, Any]:
        """CopyObject asking S3 for the copy's SHA-256, once more without if the server does not do that."""
        from botocore.exceptions import ClientError

        if self._copy_checksums:
            try:
                return self.client.copy_object(**request, ChecksumAlgorithm="SHA256")
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code not in ("NotImplemented", "InvalidArgument", "InvalidRequest"):
                    raise
                self._copy_checksums = False
        return self.client.copy_object(**request)

    def _delete_keys(self, bucket: str, keys: list[str]) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start:start + _DELETE_BATCH]
            with self._errors(f"deleting objects in {self.url(bucket=bucket)}", bucket=bucket):
                response = self.client.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True})
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                example = self.url(first.get("Key", ""), bucket)
                raise StorageError(f"could not delete {len(errors)} object(s), e.g. {example}: {first.get('Code')}: "
                                   f"{first.get('Message')}", code=str(first.get("Code", "")))


# -- error mapping ------------------------------------------------------------------------------------------------

_IAM_ACTIONS = {
    "HeadBucket": "s3:ListBucket", "ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket",
    "GetObject": "s3:GetObject", "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject", "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject", "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "CopyObject": "s3:GetObject on the source and s3:PutObject",
    "UploadPartCopy": "s3:GetObject on the source and s3:PutObject",
    "DeleteObject": "s3:DeleteObject", "DeleteObjects": "s3:DeleteObject",
}
_DENIED = frozenset({"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "AccountProblem"})
_UNKNOWN_KEY = frozenset({"InvalidAccessKeyId", "InvalidClientTokenId", "UnrecognizedClientException"})
_EXPIRED = frozenset({"ExpiredToken", "ExpiredTokenException", "InvalidToken", "TokenRefreshRequired"})
_WRONG_REGION = frozenset({"PermanentRedirect", "AuthorizationHeaderMalformed", "301",
                           "IllegalLocationConstraintException"})
_BUSY = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable",
                   "InternalError", "RequestTimeout", "503", "500", "TooManyRequestsException"})


def storage_error(error: BaseException, doing: str, *, bucket: str, key: Optional[str] = None,
                  region: str = "us-east-1", endpoint_url: Optional[str] = None, access_key: Optional[str] = None,
                  max_attempts: int = 5) -> Optional[StorageError]:
    """The one-line StorageError for a botocore/boto3/s3transfer or OS error, or None for anything else.

    `doing` completes "... while <doing>", e.g. "reading s3://bucket/key".
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        CredentialRetrievalError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
    )
    from botocore.exceptions import ConnectionError as ConnectionFailed

    error = _unwrap(error)
    minio = endpoint_url is not None
    server = endpoint_url or "S3"
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        code = str(err.get("Code") or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "")
        message = err.get("Message") or code
        named = err.get("BucketName") or bucket
        operation = getattr(error, "operation_name", "") or ""
        if code in ("NoSuchBucket",) or (code in ("404", "NotFound") and operation == "HeadBucket"):
            where = f"at {endpoint_url}" if minio else f"in AWS (region {region})"
            return StorageError(f"bucket {named} does not exist {where} ({doing}): check the bucket name this host "
                                f"is configured with{'' if minio else ' and that its stack is still deployed'}",
                                code="NoSuchBucket")
        if code in ("NoSuchKey", "404", "NotFound"):
            what = f"s3://{bucket}/{key} does not exist" if key else f"the object does not exist ({doing})"
            return ObjectNotFound(what, code="NoSuchKey")
        if code in _DENIED:
            action = _IAM_ACTIONS.get(operation, f"the S3 action {operation or 'requested'}")
            who = (f"the MinIO user of access key {access_key!r} may not do that; check its policy in MinIO"
                   if minio else "this VM's instance role may not do that; allow it in the role's IAM policy "
                   "(and check the bucket policy)")
            missing = (" (S3 also answers 403 for a missing object when s3:ListBucket is not allowed)"
                       if operation == "HeadObject" else "")
            return StorageError(f"access denied while {doing}: needs {action} on bucket {named}; {who}{missing}",
                                code="AccessDenied")
        if code in _UNKNOWN_KEY:
            hint = ("check the MinIO access key and secret this host is configured with" if minio else
                    "on the training VM credentials come from the instance role; remove AWS_ACCESS_KEY_ID, "
                    "AWS_PROFILE or ~/.aws/credentials that override it")
            shown = f" {access_key!r}" if access_key else ""
            return StorageError(f"{server} does not know the access key{shown} ({code}) while {doing}: {hint}",
                                code=code)
        if code == "SignatureDoesNotMatch":
            shown = f" of access key {access_key!r}" if access_key else ""
            return StorageError(f"{server} rejected the secret key{shown} (SignatureDoesNotMatch) while {doing}: "
                                "check the secret key", code=code)
        if code in _EXPIRED:
            return StorageError(f"the credentials have expired ({code}) while {doing}: instance-role credentials "
                                "renew by themselves, so retry; if it persists check the clock and that IMDS is "
                                "reachable", code=code)
        if code == "RequestTimeTooSkewed":
            return StorageError(f"this machine's clock is too far from {server}'s (RequestTimeTooSkewed) while "
                                f"{doing}: sync the clock (timedatectl, chrony)", code=code)
        if code in _WRONG_REGION:
            headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            actual = headers.get("x-amz-bucket-region") or err.get("Region")
            there = f"region {actual}" if actual else "another region"
            return StorageError(f"bucket {named} is in {there}, not {region} ({doing}): use the bucket's region",
                                code="WrongRegion")
        if code == "InvalidBucketName":
            return StorageError(f"{named!r} is not a valid S3 bucket name ({doing})", code=code)
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _BUSY or status >= 500 or status == 429:
            return StorageError(f"{server} kept failing ({code}: {message}) after {max_attempts} attempts while "
                                f"{doing}; try again in a minute", code=code)
        return StorageError(f"{server} refused {doing}: {code}: {message}", code=code or "ClientError")
    if isinstance(error, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
        hint = ("configure the MinIO access key and secret" if minio else
                "this VM needs its instance role (an IAM instance profile) and IMDS reachable "
                "(from a container: metadata hop limit 2)")
        return StorageError(f"no S3 credentials found while {doing}: {hint}", code="NoCredentials")
    if isinstance(error, (ConnectionFailed, ReadTimeoutError)):
        url = endpoint_url or getattr(error, "kwargs", {}).get("endpoint_url") or f"S3 in {region}"
        hint = ("is the MinIO container running? (docker ps)" if minio else
                "check this VM's outbound network (security group, NAT or S3 VPC endpoint) and the region")
        what = "did not answer in time" if isinstance(error, ReadTimeoutError) else "cannot be reached"
        return StorageError(f"the S3 endpoint {url} {what} while {doing}: {hint}", code="EndpointUnreachable")
    if isinstance(error, BotoCoreError):
        return StorageError(f"S3 request failed while {doing}: {error}", code=type(error).__name__)
    if isinstance(error, OSError):
        return StorageError(f"local file error while {doing}: {error.strerror or error}", code="LocalFile")
    return None


def _unwrap(error: BaseException) -> BaseException:
    """The botocore error under boto3/s3transfer wrappers (S3UploadFailedError, RetriesExceededError)."""
    from botocore.exceptions import BotoCoreError, ClientError

    seen = error
    for _ in range(5):
        if isinstance(seen, (ClientError, BotoCoreError)):
            return seen
        inner = getattr(seen, "last_exception", None) or seen.__cause__ or seen.__context__
        if inner is None:
            break
        seen = inner
    return error


def _local_error(error: OSError, path: Path, verb: str) -> StorageError:
    return StorageError(f"cannot {verb} {path}: {error.strerror or error}", code="LocalFile")


# -- helpers ------------------------------------------------------------------------------------------------------

def _s3_endpoints(data: dict[str, Any]) -> dict[str, Any]:
    """botocore's `endpoints` data (every partition's regions and every service's endpoints) with S3's only."""
    def s3_only(partition: dict[str, Any]) -> dict[str, Any]:
        services = partition.get("services") or {}
        return {**partition, "services": {"s3": services["s3"]} if "s3" in services else {}}

    return {**data, "partitions": [s3_only(partition) for partition in data.get("partitions") or []]}


def _make_file_loader() -> Any:
    from botocore.loaders import JSONFileLoader

    class S3EndpointsOnly(JSONFileLoader):
        def load_file(self, file_path: str) -> Any:
            data = super().load_file(file_path)
            return _s3_endpoints(data) if data is not None and os.path.basename(file_path) == "endpoints" else data

    return S3EndpointsOnly()


def _folder(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def _relative(key: str, folder: str) -> str:
    return key[len(folder):]


def _safe_relative(rel: str, key: str, storage: Storage) -> str:
    parts = [part for part in rel.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise StorageError(f"refusing to download {storage.url(key)}: its name would land outside the target "
                           "folder", code="UnsafeKey")
    return "/".join(parts)


def _excluded(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(name, pattern) for pattern in patterns)


def _local_files(root: Path, exclude: Sequence[str]) -> dict[str, tuple[Path, int]]:
    """Regular files under `root` (symlinks to files too) by relative POSIX path, with their sizes."""
    found: dict[str, tuple[Path, int]] = {}
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            rel = path.relative_to(root).as_posix()
            if _TEMP_MARK in name or _excluded(rel, exclude):
                continue
            try:
                info = path.stat()
            except OSError as error:
                raise _local_error(error, path, "read") from None
            if S_ISREG(info.st_mode):
                found[rel] = (path, info.st_size)
    return found


def _digest(path: Path) -> _Digest:
    sha256, md5, parts = hashlib.sha256(), hashlib.md5(usedforsecurity=False), []
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(PART_SIZE):
                sha256.update(chunk)
                md5.update(chunk)
                parts.append(hashlib.md5(chunk, usedforsecurity=False).digest())
    except OSError as error:
        raise _local_error(error, path, "read") from None
    multipart = f"{hashlib.md5(b''.join(parts), usedforsecurity=False).hexdigest()}-{len(parts)}" if parts else ""
    return _Digest(sha256=sha256.hexdigest(), md5=md5.hexdigest(), multipart_etag=multipart)


def _same_content(digest: _Digest, info: ObjectInfo, stat: Callable[[], ObjectInfo]) -> bool:
    """Sizes already match. The listed ETag decides when it is an MD5 we can recompute (no request);
    otherwise the sha256 metadata (one HEAD); an object with neither counts as different."""
    if digest.matches_etag(info.etag):
        return True
    sha256 = stat().sha256
    return bool(sha256) and sha256 == digest.sha256


def _unquote(etag: Optional[str]) -> str:
    return (etag or "").strip('"')


def _hex_from_base64(value: Optional[str]) -> str:
    if not value:
        return ""
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        return ""


def _info_from_head(key: str, head: dict[str, Any]) -> ObjectInfo:
    metadata = {name.lower(): value for name, value in (head.get("Metadata") or {}).items()}
    return ObjectInfo(key=key, size=int(head.get("ContentLength", 0)), etag=_unquote(head.get("ETag")),
                      last_modified=head.get("LastModified"), sha256=metadata.get(SHA256_METADATA, ""))


def _subscribers(progress: Optional[Progress], known: Optional[ObjectInfo] = None) -> list[Any]:
    from s3transfer.subscribers import BaseSubscriber

    class Subscriber(BaseSubscriber):
        def on_queued(self, future: Any, **kwargs: Any) -> None:
            if known is not None:  # spares the HeadObject s3transfer would send for these
                future.meta.provide_transfer_size(known.size)
                if known.etag and hasattr(future.meta, "provide_object_etag"):
                    future.meta.provide_object_etag(f'"{known.etag}"')

        def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
            if progress is not None:
                progress(bytes_transferred)

    return [Subscriber()]


def run_parallel(work: Callable[[Any], _T], items: Sequence[Any], workers: int = _PARALLEL_FILES) -> list[_T]:
    """`work` over `items` on a few threads, results in order; the first error stops the rest and is raised.
    The one thread pool of every bulk transfer (storage, blob sync, model export)."""
    if len(items) <= 1:
        return [work(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    executor = ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="transfer")
    futures = [executor.submit(work, item) for item in items]
    try:
        return [future.result() for future in futures]
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


_parallel = run_parallel
