"""A bucket as the keeper's copy target: a local machine's models copied to S3 by the same sync an Azure host runs
to its blob container (session.storage.mirror_sync), so the two share one set of rules: checkpoints first and pointers
last, every byte checked before it is committed, nothing deleted unless asked.

The sync's side of a target is what `BlobStore` offers: a listing with our metadata (`sha256`, `source_etag`),
`put_stream` that verifies before it commits, `chunks`, `set_metadata` and `delete`. S3 lists no metadata, so the
listing heads each object (8 at a time; a model prefix holds tens of objects, not thousands). A multipart upload
cannot carry the SHA-256 of bytes not read yet: it is written once the upload is complete, by copying the object
onto itself with the new metadata (S3's own way to change metadata; one request, no bytes through this host).
Errors are `StorageError`s with the one-line texts `Storage` gives.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterator, Optional, Sequence

from session.storage.mirror_sync import SOURCE_ETAG_METADATA, Digests, MirrorObject, Reader, put_object, s3_errors
from session.storage.s3 import PART_SIZE, SHA256_METADATA, ObjectInfo, ObjectNotFound, Storage, run_parallel

_CHUNK = 4 * 1024 * 1024  # a download's read size, as BlobStore's ranges


class S3Mirror:
    """One bucket, reached with whatever credentials `storage` was built with (a profile, the default chain)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def __repr__(self) -> str:
        return f"S3Mirror({self.url!r})"

    @property
    def url(self) -> str:
        return self.storage.url("").rstrip("/")

    def url_of(self, name: str = "") -> str:
        return self.storage.url(name)

    def check(self) -> None:
        self.storage.check_bucket()

    # -- looking ------------------------------------------------------------------------------------------------

    def list(self, prefix: str = "") -> Iterator[MirrorObject]:
        """Every object under `prefix` with our metadata; one gone between the listing and its head is left out
        (a sync deleting at the same time)."""
        objects = [info for info in self.storage.list_objects(prefix) if not info.key.endswith("/")]
        for found in run_parallel(self._head, objects):
            if found is not None:
                yield found

    def has_objects(self, prefix: str) -> bool:
        return self.storage.prefix_has_objects(prefix)

    # -- moving -------------------------------------------------------------------------------------------------

    def put_stream(self, name: str, read: Callable[[int], bytes], *, metadata: dict[str, str], content_type: str,
                   verify: Callable[[Digests], None]) -> Digests:
        """Object `name` from `read`, a part (PART_SIZE) at a time; `verify` sees the digests of everything read
        before the upload is completed, and raises to leave the object as it was."""
        reader = Reader(iter(functools.partial(read, PART_SIZE), b""))
        put_object(self.storage, name, reader, metadata, content_type, verify)
        if reader.digests.size >= PART_SIZE:  # multipart: the digest was not known when the upload began
            self.set_metadata(name, {**metadata, **reader.digests.metadata}, content_type=content_type)
        return reader.digests

    def chunks(self, name: str) -> Iterator[bytes]:
        key = name
        with s3_errors(self.storage, f"downloading {self.url_of(key)}", key):
            body = self.storage.client.get_object(Bucket=self.storage.bucket, Key=key)["Body"]
        try:
            while True:
                with s3_errors(self.storage, f"downloading {self.url_of(key)}", key):
                    piece = body.read(_CHUNK)
                if not piece:
                    return
                yield piece
        finally:
            body.close()

    def set_metadata(self, name: str, metadata: dict[str, str], *, content_type: str = "") -> None:
        """Replace the object's metadata in place (a copy onto itself; S3 keeps the bytes and the ETag)."""
        storage = self.storage
        with s3_errors(storage, f"updating the metadata of {self.url_of(name)}", name):
            if not content_type:
                content_type = storage.client.head_object(Bucket=storage.bucket, Key=name).get("ContentType", "")
            storage.client.copy_object(Bucket=storage.bucket, Key=name, CopySource={"Bucket": storage.bucket,
                                                                                    "Key": name},
                                       Metadata={k: v for k, v in metadata.items() if v}, MetadataDirective="REPLACE",
                                       ContentType=content_type or "application/octet-stream")

    def delete(self, names: Sequence[str]) -> None:
        for start in range(0, len(names), 1000):  # DeleteObjects' limit
            batch = [{"Key": name} for name in names[start:start + 1000]]
            with s3_errors(self.storage, f"deleting under {self.url}", batch[0]["Key"]):
                self.storage.client.delete_objects(Bucket=self.storage.bucket, Delete={"Objects": batch,
                                                                                       "Quiet": True})

    # -- helpers ------------------------------------------------------------------------------------------------

    def _head(self, info: ObjectInfo) -> Optional[MirrorObject]:
        storage = self.storage
        try:
            with s3_errors(storage, f"reading {self.url_of(info.key)}", info.key):
                head: dict[str, Any] = storage.client.head_object(Bucket=storage.bucket, Key=info.key)
        except ObjectNotFound:
            return None
        metadata = {key.lower(): value for key, value in (head.get("Metadata") or {}).items()}
        return MirrorObject(name=info.key, size=int(head.get("ContentLength", info.size)),
                        sha256=metadata.get(SHA256_METADATA, ""), source_etag=metadata.get(SOURCE_ETAG_METADATA, ""),
                        content_type=head.get("ContentType", "") or "")
