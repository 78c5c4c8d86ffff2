"""Powering this host off: Azure deallocates the VM through Resource Manager as its managed identity (a VM powered
off from inside stays allocated and billed); everything else powers off (a stopped EC2 instance bills no compute).
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from typing import Callable, Optional, Sequence

from session.core import console
from session.core.console import Say
from session.core.errors import DeepracerError
from session.lifecycle.metadata import IMDS, NoticeError, metadata_request

ARM = "https://management.azure.com"
ARM_API_VERSION = "2024-07-01"
DEALLOCATE_ACTION = "Microsoft.Compute/virtualMachines/deallocate/action"



class PowerOffError(DeepracerError):
    """The cloud refused to stop this host; `str()` is one line."""


class AzureVm:
    """This VM, as its managed identity sees it through IMDS and Azure Resource Manager."""

    def __init__(self, imds: str = IMDS, arm: str = ARM, timeout: float = 10.0) -> None:
        self.imds, self.arm, self.timeout = imds.rstrip("/"), arm.rstrip("/"), timeout

    def _imds_json(self, path: str) -> dict:
        status, body = metadata_request(f"{self.imds}{path}", headers={"Metadata": "true"}, timeout=self.timeout)
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
            status, body = metadata_request(url, method="POST", body=b"", timeout=self.timeout,
                                            headers={"Authorization": f"Bearer {self.token()}"})
        except (NoticeError, ValueError, KeyError) as error:
            raise PowerOffError(str(error)) from None
        if status not in (200, 202):
            hint = (f"; the VM's managed identity needs {DEALLOCATE_ACTION} on the VM"
                    if status in (401, 403) else "")
            raise PowerOffError(f"deallocate answered HTTP {status}: {_excerpt(body)}{hint}")


def _excerpt(body: bytes) -> str:
    return " ".join(body[:300].decode("utf-8", "replace").split())


def power_off(cloud: str, *, say: Say = console.say, azure: Optional[AzureVm] = None,
              run: Callable[[Sequence[str]], object] = lambda command: subprocess.run(list(command), check=False)
              ) -> str:
    """Stops this host: Azure deallocates, everything else powers off. Returns what was done."""
    if cloud == "azure":
        try:
            (azure or AzureVm()).deallocate()
            say("asked Azure to deallocate this VM (compute billing stops; the disks stay)")
            return "deallocate"
        except PowerOffError as error:
            say(f"WARNING: Azure did not deallocate this VM ({error}). Powering off from inside instead: the VM "
                "stays ALLOCATED AND BILLED at its full hourly price until you deallocate it "
                "(`az vm deallocate` or the portal's Stop).")
    run(["systemctl", "poweroff"])
    return "poweroff"
