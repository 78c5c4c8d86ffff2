"""Powering this host off: Azure deallocates the VM through Resource Manager as its managed identity (a VM powered
off from inside stays allocated and billed); everything else powers off (a stopped EC2 instance bills no compute).

Azure's calls are retried as Azure documents for managed identities (session.core.metadata: the IMDS token's 404,
410, 429 and 5xx) and for Resource Manager (429 with Retry-After, 5xx), with the same backoff (75 s in all). When
the deallocation still fails the VM is NOT powered off from inside, where it would stay allocated and billed in full
without any alert: it stays up, says so (and notifies), and the next idle check (5 minutes later) tries again.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Callable, Optional, Sequence

from session.core import console
from session.core.console import Say
from session.core.errors import DeepracerError
from session.core.metadata import (
    BACKOFF_S,
    IMDS,
    IMDS_RETRY,
    NoticeError,
    azure_identity_token,
    excerpt,
    retried_exchange,
)

ARM = "https://management.azure.com"
ARM_API_VERSION = "2024-07-01"
DEALLOCATE_ACTION = "Microsoft.Compute/virtualMachines/deallocate/action"
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
        return retried_exchange(url, retry, backoff_s=self.backoff_s, sleep=self.sleep, timeout=self.timeout,
                                **options)

    def _imds_json(self, path: str) -> dict:
        status, body = self._request(f"{self.imds}{path}", IMDS_RETRY, headers={"Metadata": "true"})
        if status != 200:
            raise PowerOffError(f"IMDS {path.split('?')[0]} answered HTTP {status}: {excerpt(body)}")
        return json.loads(body)

    def token(self) -> str:
        try:
            return azure_identity_token(f"{ARM}/", imds=self.imds, backoff_s=self.backoff_s, sleep=self.sleep,
                                        timeout=self.timeout)
        except NoticeError as error:
            raise PowerOffError(str(error)) from None

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
            raise PowerOffError(f"deallocate answered HTTP {status}: {excerpt(body)}{hint}")


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
