"""Requests to the instance metadata service (and, with its token, Azure Resource Manager), never through a proxy."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Mapping, Optional

from session.core.errors import DeepracerError

IMDS = "http://169.254.169.254"  # AWS and Azure alike
METADATA_TIMEOUT_S = 2.0


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
