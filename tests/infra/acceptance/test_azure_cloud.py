"""Azure's seams: the exact `az` command lines, and how their answers become results (a recording stand-in for
subprocess.run playing the Azure CLI)."""

from __future__ import annotations

import json
import subprocess

import pytest

from infra.acceptance import azure_cloud
from infra.acceptance.azure_cloud import ContainerModels, RunCommandChannel
from infra.acceptance.errors import Refused, StepFailed
from infra.acceptance.host_commands import RemoteResult


class FakeAz:
    def __init__(self, *answers: subprocess.CompletedProcess | BaseException) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[list[str], dict]] = []

    def __call__(self, argv, **options):
        self.calls.append((argv, options))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def answered(stdout: str = "", returncode: int = 0, stderr: str = "") -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess([], returncode, stdout, stderr)


def run_command_json(stdout: str, stderr: str = "") -> str:
    return json.dumps({"value": [{"code": "ProvisioningState/succeeded", "displayStatus": "Provisioning succeeded",
                                  "level": "Info", "message": f"Enable succeeded: \n[stdout]\n{stdout}\n[stderr]\n"
                                                              f"{stderr}", "time": None}]})


def test_a_command_runs_through_az_vm_run_command_invoke():
    az = FakeAz(answered(run_command_json("stopped 5 containers\ndeepracer-acceptance-exit=0\n")))
    result = RunCommandChannel("deepracer-host1a2b", "host1a2b", "azureuser", az).run(
        "sudo -i -u azureuser deepracer stop", 900)

    assert result == RemoteResult(0, "stopped 5 containers", "")
    ((argv, options),) = az.calls
    assert argv == ["az", "vm", "run-command", "invoke", "--resource-group", "deepracer-host1a2b", "--name",
                    "host1a2b", "--command-id", "RunShellScript", "--scripts",
                    'sudo -i -u azureuser deepracer stop\necho "deepracer-acceptance-exit=$?"', "--output", "json"]
    assert options == {"capture_output": True, "text": True, "timeout": 1200}


def test_a_failing_az_has_no_exit_code_and_says_why():
    az = FakeAz(answered("", 1, "ERROR: (Conflict) Run command extension execution is in progress.\n"))
    result = RunCommandChannel("g", "vm", "azureuser", az).run("true", 60)
    assert result == RemoteResult(None, "", "az: ERROR: (Conflict) Run command extension execution is in progress.")


def test_an_az_that_never_returns_fails_the_step():
    az = FakeAz(subprocess.TimeoutExpired(["az"], 360))
    with pytest.raises(StepFailed, match="did not return within 360 s"):
        RunCommandChannel("g", "vm", "azureuser", az).run("true", 60)


def test_reach_asks_the_users_deepracer_for_its_version():
    az = FakeAz(answered(run_command_json("deepracer-cloud session 0.1.0\ndeepracer-acceptance-exit=0\n")))
    detail = RunCommandChannel("g", "host1a2b", "azureuser", az).reach()
    assert detail == "run command on host1a2b as azureuser: deepracer-cloud session 0.1.0"
    assert az.calls[0][0][az.calls[0][0].index("--scripts") + 1].startswith("sudo -i -u azureuser deepracer --version\n")


def test_reach_fails_when_the_tool_is_missing():
    az = FakeAz(answered(run_command_json("deepracer-acceptance-exit=127\n", "sudo: deepracer: command not found\n")))
    with pytest.raises(StepFailed, match="sudo: deepracer: command not found"):
        RunCommandChannel("g", "host1a2b", "azureuser", az).reach()


def test_the_kept_container_is_checked_through_resource_manager():
    az = FakeAz(answered('{"exists": true}'), answered('{"exists": false}'))
    models = ContainerModels("deepracerk3x9p2m7q4z8", "models", az)

    assert models.kept("rl-deepracer-0").startswith("storage account deepracerk3x9p2m7q4z8, container models kept")
    assert az.calls[0][0] == ["az", "storage", "container-rm", "exists", "--storage-account", "deepracerk3x9p2m7q4z8",
                              "--name", "models", "--output", "json"]
    with pytest.raises(StepFailed, match="container models of storage account deepracerk3x9p2m7q4z8 is gone"):
        models.kept("rl-deepracer-0")


def test_preflight_needs_the_azure_cli_and_a_login(monkeypatch):
    monkeypatch.setattr(azure_cloud.shutil, "which", lambda name: None)
    with pytest.raises(Refused, match=r"^the Azure CLI \(az\) is not on PATH"):
        azure_cloud.preflight(FakeAz())
    monkeypatch.setattr(azure_cloud.shutil, "which", lambda name: "/usr/bin/az")
    az = FakeAz(answered("", 1, "Please run 'az login' to setup account."))
    with pytest.raises(Refused, match=r"^not logged in to Azure: run `az login`"):
        azure_cloud.preflight(az)
    assert az.calls[0][0] == ["az", "account", "show", "--output", "json"]
    azure_cloud.preflight(FakeAz(answered('{"id": "sub"}')))


def test_the_models_in_the_container_are_counted(azurite):
    client = azurite.new_container()
    for name in ("rl-deepracer-0/model/model_metadata.json", "rl-deepracer-0/model/1_Step-1200.ckpt.index",
                 "rl-deepracer-0/metrics/TrainingMetrics.json", "rl-deepracer-00/model/x"):
        client.upload_blob(name, b"{}")
    assert ContainerModels("devstoreaccount1", client.container_name, client=client).count("rl-deepracer-0") == 2


def test_a_missing_container_is_one_line(azurite):
    client = azurite.container("no-such-container")
    with pytest.raises(StepFailed, match=r"^container .*/no-such-container does not exist"):
        ContainerModels("devstoreaccount1", "no-such-container", client=client).count("rl-deepracer-0")
