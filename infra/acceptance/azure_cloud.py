"""Azure's seams: the host through the VM's run command (`az vm run-command invoke`), the models in the blob
container.

Why the Azure CLI and not azure-mgmt-compute: the CLI is already a prerequisite of the Azure stack (`az login`
is the deployer's credential, and the stack's own `bootstrapLog` output is this very command), while the
Compute SDK would be a new dependency for one call. The run command needs no inbound port (the default VM
has none) and runs as root, synchronously, for up to 90 minutes; it reports no exit code and only the last
4 KiB of output, which `host_commands` works around (an exit marker, a status digest).

After `destroy` the deployer's data role on the container is gone with the stack (README), so the kept
models are counted before destroy and the container's survival is checked afterwards through Azure Resource
Manager (`az storage container-rm exists`), which the deployer's Owner or Contributor role still reads.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any, Callable, Mapping

from infra.acceptance.errors import Refused, StepFailed
from infra.acceptance.host_commands import RemoteResult, as_user, az_run_command, last_line, parse_run_command
from infra.acceptance.journey import Cloud, Stack
from infra.settings import AzureSettings

# The CLI returns once the run command has ended; beyond its own limit it would only hang.
_CLI_GRACE_S = 300
Run = Callable[..., subprocess.CompletedProcess]


class RunCommandChannel:
    def __init__(self, resource_group: str, vm_name: str, user: str, run: Run = subprocess.run) -> None:
        self._group = resource_group
        self._vm = vm_name
        self._user = user
        self._run = run

    def reach(self) -> str:
        result = self.run(as_user(self._user, "deepracer", "--version"), 300)
        if result.exit_code != 0:
            raise StepFailed(f"run command on {self._vm}: {last_line(result.stderr) or last_line(result.stdout)}")
        return f"run command on {self._vm} as {self._user}: {last_line(result.stdout)}"

    def run(self, script: str, timeout_s: int) -> RemoteResult:
        argv = az_run_command(self._group, self._vm, script)
        try:
            done = self._run(argv, capture_output=True, text=True, timeout=timeout_s + _CLI_GRACE_S)
        except subprocess.TimeoutExpired:
            raise StepFailed(f"`az vm run-command invoke` on {self._vm} did not return within "
                             f"{timeout_s + _CLI_GRACE_S} s") from None
        if done.returncode != 0:
            return RemoteResult(None, "", f"az: {last_line(done.stderr) or f'exit {done.returncode}'}")
        try:
            return parse_run_command(json.loads(done.stdout))
        except json.JSONDecodeError:
            return RemoteResult(None, "", f"az: not JSON: {done.stdout[:200]}")


class ContainerModels:
    """The models in the stack's blob container, which `destroy` keeps (keepStorageOnDestroy)."""

    def __init__(self, account: str, container: str, run: Run = subprocess.run, client: Any = None) -> None:
        self._account = account
        self._container = container
        self._run = run
        self._client = client  # a ContainerClient; by default one on the deployer's Azure login

    def count(self, prefix: str) -> int:
        from infra.azure_blob import account_url, classify, container_client

        client = self._client or container_client(account_url(self._account), self._container)
        try:
            return sum(1 for _ in client.list_blobs(name_starts_with=f"{prefix}/model/"))
        except Exception as error:  # noqa: BLE001 - the SDK's, turned into one line
            raise StepFailed(str(classify(error, client.url))) from None

    def kept(self, prefix: str) -> str:
        argv = ["az", "storage", "container-rm", "exists", "--storage-account", self._account,
                "--name", self._container, "--output", "json"]
        done = self._run(argv, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise StepFailed(f"az storage container-rm exists: {last_line(done.stderr) or done.returncode}")
        if not json.loads(done.stdout).get("exists"):
            raise StepFailed(f"container {self._container} of storage account {self._account} is gone after destroy")
        return (f"storage account {self._account}, container {self._container} kept (its {prefix}/model/ blobs "
                "were counted before destroy; your data role on it went with the stack)")


def preflight(run: Run = subprocess.run) -> None:
    """The Azure CLI and a login: the run command, the stack and the blob reads all use them."""
    if shutil.which("az") is None:
        raise Refused("the Azure CLI (az) is not on PATH: install it "
                      "(https://learn.microsoft.com/cli/azure/install-azure-cli) and run `az login`")
    done = run(["az", "account", "show", "--output", "json"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise Refused("not logged in to Azure: run `az login` and `az account set --subscription ...`")


def cloud(stack: Stack, settings: AzureSettings) -> Cloud:
    user = settings.admin_username

    def connect(outputs: Mapping[str, Any]) -> RunCommandChannel:
        return RunCommandChannel(outputs["resourceGroup"], outputs["vmName"], user)

    def models(outputs: Mapping[str, Any]) -> ContainerModels:
        return ContainerModels(outputs["storageAccount"], outputs["container"])

    return Cloud("azure", user, stack, connect, models)
