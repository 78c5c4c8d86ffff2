"""Powering this host off: Azure deallocates the VM through Resource Manager as its managed identity (a VM powered
off from inside stays allocated and billed); everything else powers off (a stopped EC2 instance bills no compute).

Azure's calls are retried as Azure documents for managed identities: the IMDS token endpoint answers 404 while
the identity is not ready yet, 410 while IMDS updates (retry for at least 70 s), 429 when throttled and 5xx on
transient failures; Resource Manager answers 429 (with Retry-After) and 5xx. Each is retried with exponential
backoff (`BACKOFF_S`, 75 s in all; Retry-After when it says longer, up to a minute). When the deallocation still fails
the VM is NOT powered off from inside, where it would stay allocated and billed in full without any alert: it
stays up, says so (and notifies), and the next idle check (5 minutes later) tries again.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
from typing import Callable, Mapping, Optional, Sequence

from session.core import console
from session.core.console import Say
from session.core.errors import DeepracerError
from session.lifecycle.metadata import IMDS, NoticeError, metadata_exchange

ARM = "https://management.azure.com"
ARM_API_VERSION = "2024-07-01"
DEALLOCATE_ACTION = "Microsoft.Compute/virtualMachines/deallocate/action"
BACKOFF_S = (3.0, 6.0, 12.0, 24.0, 30.0)  # waits between the tries: 75 s (IMDS's 410: at least 70 s)
MAX_RETRY_AFTER_S = 60.0
IMDS_RETRY = frozenset({404, 410, 429}) | frozenset(range(500, 600))  # the identity's token, as Azure documents
ARM_RETRY = frozenset({429}) | frozenset(range(500, 600))


class PowerOffError(DeepracerError):
    """The cloud refused to stop this host; `str()` is one line."""


class AzureVm:
    """This VM, as its managed identity sees it through IMDS and Azure Resource Manager."""

    def __init__(self, imds: str = IMDS, arm: str = ARM, timeout: float = 10.0, *,
                 backoff_s: Sequence[float] = BACKOFF_S, sleep: Callable[[float], None] = time.sleep) -> None:
        self.imds, self.arm, self.timeout = imds.rstrip("/"), arm.rstrip("/"), timeout
        self.backoff_s, self.sleep = tuple(backoff_s), sleep

    def _request(self, url: str, retry: frozenset, **options) -> tuple[int, bytes]:
        """The request, tried again after each wait of `backoff_s` while it answers a status in `retry` or cannot
        reach the endpoint; the last answer (or NoticeError)."""
        for wait in (*self.backoff_s, None):
            try:
                status, body, headers = metadata_exchange(url, timeout=self.timeout, **options)
            except NoticeError:
                if wait is None:
                    raise
            else:
                if status not in retry or wait is None:
                    return status, body
                wait = max(wait, min(_retry_after(headers), MAX_RETRY_AFTER_S))
            self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _imds_json(self, path: str) -> dict:
        status, body = self._request(f"{self.imds}{path}", IMDS_RETRY, headers={"Metadata": "true"})
        if status != 200:
            raise PowerOffError(f"IMDS {path.split('?')[0]} answered HTTP {status}: {_excerpt(body)}")
        return json.loads(body)

    def token(self) -> str:
        resource = urllib.parse.quote(f"{ARM}/", safe="")
        return self._imds_json(f"/metadata/identity/oauth2/token?api-version=2018-02-01&resource={resource}"
                               )["access_token"]

    def resource_id(self) -> str:
        compute = self._imds_json("/metadata/instance/compute?api-version=2021-02-01")
        return compute.get("resourceId") or (
            f"/subscriptions/{compute['subscriptionId']}/resourceGroups/{compute['resourceGroupName']}"
            f"/providers/Microsoft.Compute/virtualMachines/{compute['name']}")

    def deallocate(self) -> None:
        """Asks ARM to deallocate this VM (202: it goes down within a minute or so)."""
        try:
            url = f"{self.arm}{self.resource_id()}/deallocate?api-version={ARM_API_VERSION}"
            status, body = self._request(url, ARM_RETRY, method="POST", body=b"",
                                         headers={"Authorization": f"Bearer {self.token()}"})
        except (NoticeError, ValueError, KeyError) as error:
            raise PowerOffError(str(error)) from None
        if status not in (200, 202):
            hint = (f"; the VM's managed identity needs {DEALLOCATE_ACTION} on the VM"
                    if status in (401, 403) else "")
            raise PowerOffError(f"deallocate answered HTTP {status}: {_excerpt(body)}{hint}")


def _retry_after(headers: Mapping[str, str]) -> float:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), "")
    try:
        return float(value or 0)
    except ValueError:  # an HTTP date: the backoff's own wait
        return 0.0


def _excerpt(body: bytes) -> str:
    return " ".join(body[:300].decode("utf-8", "replace").split())


def power_off(cloud: str, *, say: Say = console.say, azure: Optional[AzureVm] = None,
              run: Callable[[Sequence[str]], object] = lambda command: subprocess.run(list(command), check=False),
              alert: Optional[Callable[[str], object]] = None) -> str:
    """Stops this host: Azure deallocates, everything else powers off. Returns what was done: "deallocate",
    "poweroff", or "failed" (Azure refused or could not be asked: the VM stays up, said and `alert`ed, and the
    caller's next check tries again)."""
    if cloud != "azure":
        run(["systemctl", "poweroff"])
        return "poweroff"
    try:
        (azure or AzureVm()).deallocate()
    except PowerOffError as error:
        message = (f"Azure did not deallocate this VM ({error}). It stays up, and billed, rather than powering "
                   "off from inside, where it would stay allocated and billed at its full hourly price; the next "
                   "idle check (in 5 minutes) tries again. `az vm deallocate` or the portal's Stop stops it now.")
        say(f"WARNING: {message}")
        if alert is not None:
            alert(message)
        return "failed"
    say("asked Azure to deallocate this VM (compute billing stops; the disks stay)")
    return "deallocate"
