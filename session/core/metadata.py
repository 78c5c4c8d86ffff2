"""Requests to the instance metadata service (and, with its token, Azure's APIs), never through a proxy.

Below every layer that asks the cloud about this machine: the spot notices and the power-off (lifecycle) and the
swarm's join token (host) share it.

Azure's managed identity is asked as Azure documents it: the IMDS token endpoint answers 404 while the identity is
not ready yet, 410 while IMDS updates (retry for at least 70 s), 429 when throttled and 5xx on transient failures;
each is retried with exponential backoff (`BACKOFF_S`, 75 s in all; Retry-After when it says longer, up to a minute).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

from session.core.errors import DeepracerError

IMDS = "http://169.254.169.254"  # AWS and Azure alike
METADATA_TIMEOUT_S = 2.0
BACKOFF_S = (3.0, 6.0, 12.0, 24.0, 30.0)  # waits between the tries: 75 s (IMDS's 410: at least 70 s)
MAX_RETRY_AFTER_S = 60.0
IMDS_RETRY = frozenset({404, 410, 429}) | frozenset(range(500, 600))  # the identity's token, as Azure documents


class NoticeError(DeepracerError):
    """The metadata service could not be asked, or answered something unexpected; `str()` is one line."""


def metadata_request(url: str, *, method: str = "GET", headers: Optional[dict[str, str]] = None,
                     body: Optional[bytes] = None, timeout: float = METADATA_TIMEOUT_S) -> tuple[int, bytes]:
    """One request to an instance metadata (or management) endpoint: (status, body). HTTP errors are answers
    too (404 = no notice); only a failure to reach it raises NoticeError. Proxies are never used."""
    status, answer, _ = metadata_exchange(url, method=method, headers=headers, body=body, timeout=timeout)
    return status, answer


def metadata_exchange(url: str, *, method: str = "GET", headers: Optional[dict[str, str]] = None,
                      body: Optional[bytes] = None, timeout: float = METADATA_TIMEOUT_S
                      ) -> tuple[int, bytes, Mapping[str, str]]:
    """`metadata_request`, with the response's headers (Retry-After)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read(), dict(response.headers.items())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read(), dict(error.headers.items())
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise NoticeError(f"cannot reach {url.split('?')[0]}: {reason}") from None


def retried_exchange(url: str, retry: frozenset, *, backoff_s: Sequence[float] = BACKOFF_S,
                     sleep: Callable[[float], None] = time.sleep, timeout: float = METADATA_TIMEOUT_S,
                     **options) -> tuple[int, bytes]:
    """The request, tried again after each wait of `backoff_s` while it answers a status in `retry` or cannot
    reach the endpoint; the last answer (or NoticeError)."""
    for wait in (*backoff_s, None):
        try:
            status, body, headers = metadata_exchange(url, timeout=timeout, **options)
        except NoticeError:
            if wait is None:
                raise
        else:
            if status not in retry or wait is None:
                return status, body
            wait = max(wait, min(retry_after(headers), MAX_RETRY_AFTER_S))
        sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def azure_identity_token(resource: str, *, imds: str = IMDS, backoff_s: Sequence[float] = BACKOFF_S,
                         sleep: Callable[[float], None] = time.sleep, timeout: float = METADATA_TIMEOUT_S) -> str:
    """This VM's managed identity's access token for `resource` (`https://management.azure.com/`,
    `https://vault.azure.net`); NoticeError when IMDS does not give one. The token is a secret: never say it."""
    query = urllib.parse.urlencode({"api-version": "2018-02-01", "resource": resource})
    path = "/metadata/identity/oauth2/token"
    status, body = retried_exchange(f"{imds.rstrip('/')}{path}?{query}", IMDS_RETRY, backoff_s=backoff_s,
                                    sleep=sleep, timeout=timeout, headers={"Metadata": "true"})
    if status != 200:
        raise NoticeError(f"IMDS {path} answered HTTP {status}: {excerpt(body)}")
    try:
        return str(json.loads(body)["access_token"])
    except (ValueError, KeyError):
        raise NoticeError(f"IMDS {path} answered without an access_token") from None


@dataclass(frozen=True)
class Machine:
    """This machine as its cloud's metadata service describes it: the instance type or VM size, and whether it
    runs on spot capacity (AWS `instance-life-cycle` spot, Azure `priority` Spot)."""

    cloud: str
    size: str
    spot: bool


def this_machine(cloud: str, *, imds: str = IMDS, timeout: float = METADATA_TIMEOUT_S) -> Optional[Machine]:
    """Asks IMDS what this machine is; None on a cloud without one (local). NoticeError when it cannot be asked or
    answers something unexpected."""
    base = imds.rstrip("/")
    if cloud == "aws":
        status, token = metadata_request(f"{base}/latest/api/token", method="PUT", timeout=timeout,
                                         headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        if status != 200:
            raise NoticeError(f"IMDSv2 refused a session token: HTTP {status}")
        asked = {}
        for name in ("instance-type", "instance-life-cycle"):
            status, body = metadata_request(f"{base}/latest/meta-data/{name}", timeout=timeout,
                                            headers={"X-aws-ec2-metadata-token": token.decode().strip()})
            if status != 200:
                raise NoticeError(f"IMDS meta-data/{name} answered HTTP {status}: {excerpt(body)}")
            asked[name] = body.decode().strip()
        return Machine("aws", asked["instance-type"], asked["instance-life-cycle"] == "spot")
    if cloud == "azure":
        path = "/metadata/instance/compute?api-version=2021-02-01"
        status, body = metadata_request(f"{base}{path}", headers={"Metadata": "true"}, timeout=timeout)
        if status != 200:
            raise NoticeError(f"IMDS {path.split('?')[0]} answered HTTP {status}: {excerpt(body)}")
        try:
            compute = json.loads(body)
            return Machine("azure", str(compute["vmSize"]), str(compute.get("priority") or "").lower() == "spot")
        except (ValueError, KeyError, TypeError):
            raise NoticeError(f"IMDS {path.split('?')[0]} answered without a vmSize: {excerpt(body)}") from None
    return None


def retry_after(headers: Mapping[str, str]) -> float:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), "")
    try:
        return float(value or 0)
    except ValueError:  # an HTTP date: the backoff's own wait
        return 0.0


def excerpt(body: bytes) -> str:
    """An answer's first 300 bytes on one line, for an error message."""
    return " ".join(body[:300].decode("utf-8", "replace").split())
