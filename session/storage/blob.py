"""The Azure side of kept models: the stack's blob container (`BlobStore`), reached as this VM's managed identity.

On azure the simulator's S3 is MinIO on this VM, its data on the temp disk (/mnt), which Azure wipes whenever
the VM is deallocated (spot eviction, idle stop, `az vm deallocate`), redeployed or destroyed. The blob container
outlives all of that (the stack keeps the storage account on destroy): session.storage.mirror_sync copies the
model prefixes between MinIO and a `BlobStore`, and session.storage.keeper decides when.

The VM reaches Blob as its system-assigned managed identity (`ManagedIdentityCredential`, not
DefaultAzureCredential: on the VM that chain would prefer AZURE_* variables or a user's `az login` over the
identity the stack granted, and report failures as a page of attempts), with Storage Blob Data Contributor on
this one container. Every failure leaves as a `MirrorSyncError` whose text is one line a user can act on. The
Azure SDK is imported on first use: nothing of it loads on aws.
"""

from __future__ import annotations

import base64
import contextlib
import re
import threading
import uuid
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

from session.storage.mirror_sync import (
    BLOCK_SIZE,
    SOURCE_ETAG_METADATA,
    Digests,
    MirrorObject,
    MirrorSyncError,
    first_line,
    parallel,
    read_exactly,
)
from session.storage.s3 import SHA256_METADATA, StorageError

if TYPE_CHECKING:  # pragma: no cover
    from session.core.config import SystemConfig

BLOB_HOST = "blob.core.windows.net"
ROLE = "Storage Blob Data Contributor"
MANAGED_IDENTITY = "this VM's managed identity"
# system.env keys the stack writes on azure (infra/bootstrap.py); read from `raw` until config.py types them.
ACCOUNT_KEY = "DR_AZURE_STORAGE_ACCOUNT"
CONTAINER_KEY = "DR_AZURE_BLOB_CONTAINER"
_RANGE_SIZE = 4 * 1024 * 1024
_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")
_CONTAINER = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")
_NOT_AUTHORIZED = frozenset({"AuthorizationPermissionMismatch", "AuthorizationFailure",
                             "AuthorizationResourceTypeMismatch", "AuthorizationSourceIPMismatch",
                             "AuthorizationProtocolMismatch", "AuthorizationServiceMismatch"})


class BlobStore:
    """One blob container. `credential`: anything azure-core takes (a TokenCredential, an account-key dict);
    None means this VM's managed identity. `identity` names who the credential is, for error messages.
    Safe to share between threads."""

    def __init__(self, account_url: str, container: str, credential: Any = None, *,
                 identity: str = MANAGED_IDENTITY, max_attempts: int = 4, connection_verify: Any = None,
                 connect_timeout: float = 10.0, read_timeout: float = 120.0) -> None:
        if not account_url.startswith(("https://", "http://")):
            raise MirrorSyncError(f"blob account URL {account_url!r} must start with https://", code="InvalidUrl")
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
                    raise MirrorSyncError("the Azure SDK is not installed in this Python: pip install "
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
        """Raise the MirrorSyncError a sync would hit first (no container, no role, no network, no token), if any."""
        with self.errors("checking the container"):
            self.client.get_container_properties()

    def list(self, prefix: str = "") -> Iterator[MirrorObject]:
        """Every blob whose name starts with `prefix`, with our metadata (from the listing: no request per blob)."""
        with self.errors(f"listing {self.url_of(prefix)}"):
            for item in self.client.list_blobs(name_starts_with=prefix, include=["metadata"]):
                metadata = {key.lower(): value for key, value in (item.metadata or {}).items()}
                settings = item.content_settings
                yield MirrorObject(name=item.name, size=int(item.size or 0), sha256=metadata.get(SHA256_METADATA, ""),
                               source_etag=metadata.get(SOURCE_ETAG_METADATA, ""),
                               content_type=(settings.content_type if settings else "") or "")

    def has_objects(self, prefix: str) -> bool:
        with self.errors(f"listing {self.url_of(prefix)}"):
            for _ in self.client.list_blobs(name_starts_with=prefix, results_per_page=1):
                return True
        return False

    # -- moving -------------------------------------------------------------------------------------------------

    def put_stream(self, name: str, read: Callable[[int], bytes], *, metadata: dict[str, str], content_type: str,
                   verify: Callable[["Digests"], None]) -> "Digests":
        """Blob `name` from `read` (called with a size, b"" at the end), one BLOCK_SIZE at a time. `verify` sees
        the digests of everything read before anything is committed; it raises to leave the blob as it was."""
        from azure.storage.blob import BlobBlock, ContentSettings

        digests = Digests()
        settings = ContentSettings(content_type=content_type or "application/octet-stream")
        with self.errors(f"uploading {self.url_of(name)}"):
            blob = self.client.get_blob_client(name)
            piece = read_exactly(read, BLOCK_SIZE)
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
                piece = read_exactly(read, BLOCK_SIZE) if len(piece) == BLOCK_SIZE else b""
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

        parallel(delete_one, list(names))

    # -- errors -------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (MirrorSyncError, StorageError):
            raise
        except Exception as error:  # only the Azure SDK's and the OS's errors are translated
            mapped = self.error(error, doing)
            if mapped is None:
                raise
            raise mapped from None

    def error(self, error: BaseException, doing: str) -> Optional[MirrorSyncError]:
        """The one-line MirrorSyncError for an azure-core/azure-identity or OS error, or None for anything else."""
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
            return MirrorSyncError(f"cannot get a token for Azure Storage as {self.identity} while {doing}: "
                                   f"{first_line(error)}; the VM needs its system-assigned identity (the stack enables "
                                   f"it) and the instance metadata service at 169.254.169.254 reachable",
                                   code="NoToken")
        if isinstance(error, HttpResponseError):
            code = _code(error)
            status = error.status_code or 0
            if isinstance(error, ResourceNotFoundError) and code == "ContainerNotFound":
                return MirrorSyncError(f"container {self.container} does not exist in storage account {account} "
                                       f"({doing}): check {CONTAINER_KEY} in system.env and that the stack is deployed",
                                       code=code)
            if isinstance(error, ResourceNotFoundError) and code == "BlobNotFound":
                return MirrorSyncError(f"{doing}: the blob does not exist", code=code)
            if code in _NOT_AUTHORIZED or status == 403 or isinstance(error, ClientAuthenticationError):
                settling = (" (a new role assignment takes a few minutes to apply)"
                            if code == "AuthorizationPermissionMismatch" else "")
                return MirrorSyncError(f"{self.url} refused {doing} ({code or status}): {grant}{settling}",
                                       code=code or "AccessDenied")
            if status >= 500 or status in (408, 429):
                return MirrorSyncError(f"{self.url} kept failing ({code or status}: {first_line(error)}) while "
                                       f"{doing}; try again in a minute", code=code or str(status))
            return MirrorSyncError(f"{self.url} refused {doing}: {code or status}: {first_line(error)}",
                                   code=code or str(status))
        if isinstance(error, (ServiceRequestError, ServiceResponseError)):
            what = "did not answer in time" if isinstance(error, ServiceResponseError) else "cannot be reached"
            return MirrorSyncError(f"the blob endpoint {self.account_url} {what} while {doing}: check {ACCOUNT_KEY} in "
                                   f"system.env and this VM's outbound network ({first_line(error)[:200]})",
                                   code="EndpointUnreachable")
        if isinstance(error, OSError):
            return MirrorSyncError(f"local error while {doing}: {error.strerror or error}", code="LocalFile")
        return None


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
        raise MirrorSyncError(f"{' and '.join(missing)}: expected the stack's storage account and blob container in "
                              f"system.env on DR_CLOUD={system.cloud}, got none (redeploy with `pulumi up --stack "
                              "azure`, which writes them)", code="NotConfigured")
    if not _ACCOUNT.fullmatch(account):
        raise MirrorSyncError(f"{ACCOUNT_KEY}: expected a storage account name (3-24 lowercase letters and digits), "
                              f"got {account!r}", code="NotConfigured")
    if not _CONTAINER.fullmatch(container):
        raise MirrorSyncError(f"{CONTAINER_KEY}: expected a blob container name (3-63 lowercase letters, digits and "
                              f"single hyphens), got {container!r}", code="NotConfigured")
    return BlobStore(url or account_url(account), container, credential, **options)


def _account_name(url: str) -> str:
    host = url.split("://", 1)[-1].split("/", 1)
    if host[0].endswith("." + BLOB_HOST):
        return host[0].split(".", 1)[0]
    return host[1].split("/", 1)[0] if len(host) > 1 and host[1] else host[0]  # path style (Azurite)


def _code(error: Any) -> str:
    code = getattr(error, "error_code", None)
    return str(getattr(code, "value", code)) if code else ""
