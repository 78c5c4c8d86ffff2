"""The deployer's side of Azure Blob storage: a container client on the deployer's Azure login, and what an
error from it means for a caller that polls or retries.

The storage account refuses shared keys, so every request carries an Entra ID token: `az login` (or any
source DefaultAzureCredential knows) on the laptop. A role assignment the stack has just created can take a
few minutes to reach the storage service; until then requests fail with 403 AuthorizationPermissionMismatch,
which callers wait out for a while (NotAuthorizedYet) rather than failing at once.

The Azure SDK is imported inside the functions: `python -m infra.wait_ready --bucket ...` on AWS never loads it.
"""

from __future__ import annotations

from typing import Any, Optional

BLOB_HOST = "blob.core.windows.net"
# Retries are the callers' (a poll loop, an upload loop): one attempt per call, short timeouts.
_CLIENT_OPTIONS = {"retry_total": 0, "connection_timeout": 10, "read_timeout": 60}
# 403s that mean "no data role (yet)", as opposed to a wrong credential or a firewall.
_NOT_AUTHORIZED_CODES = frozenset({"AuthorizationPermissionMismatch", "AuthorizationFailure"})
_TRANSIENT_CODES = frozenset({"ServerBusy", "InternalError", "OperationTimedOut", "ServiceUnavailable"})


class BlobError(Exception):
    """`str()` is one line for the user."""


class Transient(BlobError):
    """Try again: the service or the network is busy."""


class NotAuthorizedYet(Transient):
    """403 without a data role: wait a few minutes for a new role assignment, then it is final."""


class Fatal(BlobError):
    """Waiting will not help."""


def account_url(account: str) -> str:
    return f"https://{account}.{BLOB_HOST}"


def container_client(url: str, container: str, credential: Any = None, connection_verify: Any = None) -> Any:
    """A ContainerClient on the deployer's Azure credentials (DefaultAzureCredential unless one is given)."""
    from azure.storage.blob import ContainerClient

    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
    options: dict[str, Any] = dict(_CLIENT_OPTIONS)
    if connection_verify is not None:
        options["connection_verify"] = connection_verify
    return ContainerClient(url, container, credential=credential, **options)


def classify(error: Exception, where: str) -> Exception:
    """An Azure SDK error as LookupError (no such blob yet), NotAuthorizedYet, Transient or Fatal.

    `where` is the container's URL, for the messages."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(error, ClientAuthenticationError):
        status = getattr(error, "status_code", None)
        if status is None:  # the credential itself: no `az login`, an expired session ...
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            return Fatal(f"cannot get an Azure token for the deployer ({first}); run `az login`")
        return Fatal(f"Azure Storage rejected the deployer's token ({_code(error) or status}); run `az login` "
                     "again and check the tenant")
    if isinstance(error, ResourceNotFoundError):
        code = _code(error)
        if code == "BlobNotFound":
            return LookupError(code)
        if code == "ContainerNotFound":
            return Fatal(f"container {where} does not exist; check the stack's storage outputs")
        return Fatal(f"{where}: not found ({code or 404})")
    if isinstance(error, HttpResponseError):
        code = _code(error)
        status = error.status_code or 0
        if code in _NOT_AUTHORIZED_CODES:
            return NotAuthorizedYet(f"{code}: the deployer has no data role on container {where} (yet)")
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            return Transient(f"{code or status}: {_first_line(error)}")
        if status == 403:
            return Fatal(f"access denied to {where} ({code or status}: {_first_line(error)})")
        return Fatal(f"{where}: {code or status}: {_first_line(error)}")
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):
        # DNS for a new account, a dropped connection: both heal.
        return Transient(_first_line(error))
    return error


def _code(error: Any) -> Optional[str]:
    code = getattr(error, "error_code", None)
    return str(getattr(code, "value", code)) if code else None


def _first_line(error: Exception) -> str:
    text = str(getattr(error, "message", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
