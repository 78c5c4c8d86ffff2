"""The Automation API seam, against pulumi.automation's own names with its stack replaced by a recorder."""

from __future__ import annotations

import pytest
from pulumi import automation as auto

from infra.acceptance.cli import REPO_ROOT
from infra.acceptance.errors import Refused, StepFailed
from infra.acceptance.pulumi_stack import PulumiStack, preflight, pulumi_failure


class RecordedStack:
    def __init__(self, calls: list) -> None:
        self.calls = calls
        self.workspace = self

    def set_all_config(self, config, *, path=False):
        self.calls.append(("set_all_config", {k: (v.value, v.secret) for k, v in config.items()}, path))

    def up(self, **options):
        self.calls.append(("up", options["show_secrets"]))
        options["on_output"]("Updating (acc-aws-1)\n")
        return auto.UpResult(stdout="", stderr="", summary=None, outputs={
            "instanceId": auto.OutputValue("i-0abc", False), "minioSecret": auto.OutputValue("s3cr3t", True)})

    def destroy(self, **options):
        self.calls.append(("destroy", options["show_secrets"]))

    def remove_stack(self, name):
        self.calls.append(("remove_stack", name))


def test_the_stack_is_created_on_this_checkouts_program_and_driven(monkeypatch):
    calls: list = []

    def create_stack(name, **options):
        calls.append(("create_stack", name, options))
        return RecordedStack(calls)

    monkeypatch.setattr(auto, "create_stack", create_stack)
    said: list[str] = []
    stack = PulumiStack("acc-aws-1", REPO_ROOT, {"aws:region": "us-east-1", "aws:defaultTags.tags.stack": "acc-aws-1"},
                        said.append)
    stack.create()
    outputs = stack.up()
    stack.destroy()
    stack.remove()

    assert calls == [
        ("create_stack", "acc-aws-1", {"work_dir": str(REPO_ROOT)}),
        ("set_all_config", {"aws:region": ("us-east-1", False), "aws:defaultTags.tags.stack": ("acc-aws-1", False)},
         True),
        ("up", False),
        ("destroy", False),
        ("remove_stack", "acc-aws-1"),
    ]
    assert (REPO_ROOT / "Pulumi.yaml").is_file()
    assert outputs == {"instanceId": "i-0abc", "minioSecret": "s3cr3t"}
    assert said == ["Updating (acc-aws-1)"]


class Workspace:
    """LocalWorkspace answering `pulumi whoami --verbose` as the CLI would, or failing as it does when logged out."""

    url: str | None = None

    def __init__(self, work_dir: str) -> None:
        assert work_dir == str(REPO_ROOT)

    def who_am_i(self) -> auto.WhoAmIResult:
        if self.url is None:
            raise auto.CommandError(auto.CommandResult("", "error: no credentials", 255))
        return auto.WhoAmIResult(user="me", url=self.url)


@pytest.mark.parametrize("url, env, refused", [
    ("file://~", {}, "the local Pulumi backend (file://~) needs PULUMI_CONFIG_PASSPHRASE"),
    ("file://~", {"PULUMI_CONFIG_PASSPHRASE": ""}, None),
    ("file:///srv/state", {"PULUMI_CONFIG_PASSPHRASE_FILE": "/run/secrets/p"}, None),
    ("https://api.pulumi.com", {}, None),
    (None, {"PULUMI_CONFIG_PASSPHRASE": "x"}, "the Pulumi CLI is not logged in: run `pulumi login --local`"),
])
def test_preflight_needs_a_backend_and_a_local_ones_passphrase(monkeypatch, url, env, refused):
    monkeypatch.setattr(Workspace, "url", url)
    monkeypatch.setattr(auto, "LocalWorkspace", Workspace)
    if refused is None:
        preflight(REPO_ROOT, env)
    else:
        with pytest.raises(Refused, match=refused.replace("(", r"\(").replace(")", r"\)")):
            preflight(REPO_ROOT, env)


def command_error(stdout: str, stderr: str = "", code: int = 255) -> auto.CommandError:
    return auto.CommandError(auto.CommandResult(stdout, stderr, code))


def test_a_failed_up_is_the_line_that_says_why(monkeypatch):
    class FailingStack(RecordedStack):
        def up(self, **options):
            raise command_error(
                "Updating (acc-aws-20261206-101500)\n\n"
                "     Type                 Name                 Status\n"
                " +   aws:ec2:Instance     host                 **creating failed**     1 error\n\n"
                "Diagnostics:\n"
                "  aws:ec2:Instance (host):\n"
                "    error: 1 error occurred:\n"
                "    \t* creating EC2 Instance: operation error EC2: RunInstances, api error "
                "MaxSpotInstanceCountExceeded: Max spot instance count exceeded\n\n"
                "  pulumi:pulumi:Stack (deepracer-cloud-acc-aws-20261206-101500):\n"
                "    error: update failed\n",
                "error: update failed\n")

    monkeypatch.setattr(auto, "create_stack", lambda name, **options: FailingStack([]))
    stack = PulumiStack("acc-aws-20261206-101500", REPO_ROOT, {}, print)
    stack.create()
    with pytest.raises(StepFailed) as failed:
        stack.up()
    assert str(failed.value) == ("pulumi up: creating EC2 Instance: operation error EC2: RunInstances, api error "
                                 "MaxSpotInstanceCountExceeded: Max spot instance count exceeded")


def test_the_programs_own_one_line_error_is_kept():
    text = str(command_error(
        "Previewing update (acc-azure-1)\n  pulumi:pulumi:Stack (deepracer-cloud-acc-azure-1):\n"
        "    error: Pulumi.acc-azure-1.yaml: deepracer-cloud:vmSize: expected an Azure VM size\n"
        "    error: another thing\n"))
    assert pulumi_failure(text) == ("Pulumi.acc-azure-1.yaml: deepracer-cloud:vmSize: expected an Azure VM size "
                                    "(and 1 more)")


def test_output_without_an_error_line_gives_its_last_line():
    assert pulumi_failure(str(command_error("", "no Pulumi.yaml project file found\n"))) == \
        "no Pulumi.yaml project file found"
    assert pulumi_failure("") == "failed without output"
