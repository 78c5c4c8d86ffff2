"""A folder inside the keeper's bucket or container: `DR_MODEL_COPY_URL=s3://my-bucket/deepracer` keeps the
models under `deepracer/` of a bucket that holds other things too, so a builder needs no bucket of its own.

The sync (session.storage.mirror_sync) names objects as MinIO does (`rl-1/model/…`); this wrapper puts the folder
in front of every name it is given and takes it off every name it lists, so S3Mirror and BlobStore stay what they
are and the sync's rules (checkpoints first, every byte checked, nothing deleted unless asked) hold unchanged.
A listing asks for the folder's names only: nothing outside it is read, changed or deleted.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterator, Sequence

from session.storage.mirror_sync import Digests, Mirror, MirrorObject


class FolderMirror:
    """`mirror` seen from inside `folder` (one or more path segments, without slashes at either end)."""

    def __init__(self, mirror: Mirror, folder: str) -> None:
        self.inner = mirror
        self.folder = folder.strip("/") + "/"

    def __repr__(self) -> str:
        return f"FolderMirror({self.url!r})"

    @property
    def url(self) -> str:
        return self.url_of().rstrip("/")

    def url_of(self, name: str = "") -> str:
        return self.inner.url_of(self.folder + name)

    def list(self, prefix: str = "") -> Iterator[MirrorObject]:
        for info in self.inner.list(self.folder + prefix):
            yield replace(info, name=info.name[len(self.folder):])

    def has_objects(self, prefix: str) -> bool:
        return self.inner.has_objects(self.folder + prefix)

    def put_stream(self, name: str, read: Callable[[int], bytes], *, metadata: dict[str, str], content_type: str,
                   verify: Callable[[Digests], None]) -> Digests:
        return self.inner.put_stream(self.folder + name, read, metadata=metadata, content_type=content_type,
                                     verify=verify)

    def chunks(self, name: str) -> Iterator[bytes]:
        return self.inner.chunks(self.folder + name)

    def set_metadata(self, name: str, metadata: dict[str, str]) -> None:
        self.inner.set_metadata(self.folder + name, metadata)

    def delete(self, names: Sequence[str]) -> None:
        self.inner.delete([self.folder + name for name in names])
