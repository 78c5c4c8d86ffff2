"""The command: its refusals (nothing created, one line, exit 2), the summary on stdout and in a file, exit codes;
and the real entry point, scripts/cloud-acceptance, which refuses without an opt-in before touching any cloud."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from infra.acceptance import cli
from infra.acceptance.errors import Refused
from infra.acceptance.host_commands import RemoteResult
from tests.infra.acceptance.fakes import STACK, World

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 12, 6, 10, 15, 0, tzinfo=timezone.utc)
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey me@laptop"


class Harness:
    def __init__(self, tmp_path: Path, world: World | None = None, env: dict | None = None,
                 path: tuple[str, ...] = ("pulumi", "az"), modules: tuple[str, ...] = ("pulumi.automation", "pulumi_aws", "pulumi_azure_native"),
                 refuse: str | None = None) -> None:
        self.world = world or World()
        self.made: list[tuple] = []
        self.stdout, self.stderr = io.StringIO(), io.StringIO()

        def make_cloud(cloud, name, config, settings, say):
            self.made.append((cloud, name, dict(config), settings))
            if refuse:
                raise Refused(refuse)
            return self.world.cloud(cloud, getattr(settings, "admin_username", "ubuntu"))

        self.deps = cli.Deps(env=env if env is not None else {}, which=lambda name: f"/usr/bin/{name}"
                             if name in path else None, has_module=lambda name: name in modules,
                             make_cloud=make_cloud, now=lambda: NOW, commit=lambda root: "0416588",
                             clock=self.world.clock, sleep=self.world.clock.sleep, repo_root=REPO,
                             stdout=self.stdout, stderr=self.stderr)
        self.tmp_path = tmp_path

    def main(self, *args: str) -> int:
        return cli.main([*args, "--summary", str(self.tmp_path / "summary.md")], self.deps)


def refusal(harness: Harness) -> str:
    lines = harness.stderr.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert harness.stdout.getvalue() == "" and harness.made == [] and harness.world.calls == []
    return lines[0]


def test_no_opt_in_no_start(tmp_path):
    harness = Harness(tmp_path)
    assert harness.main("aws") == 2
    assert refusal(harness) == ("cloud-acceptance: this creates a GPU host in your aws account and costs money "
                                "(about an hour of it); pass --yes-spend-money or set DR_ACCEPTANCE=1 to go ahead")


@pytest.mark.parametrize("value", ["0", "yes", ""])
def test_only_dr_acceptance_1_opts_in(tmp_path, value):
    harness = Harness(tmp_path, env={"DR_ACCEPTANCE": value})
    assert harness.main("aws") == 2
    assert "--yes-spend-money" in refusal(harness)


def test_dr_acceptance_1_opts_in(tmp_path):
    harness = Harness(tmp_path, env={"DR_ACCEPTANCE": "1"})
    assert harness.main("aws") == 0


def test_no_pulumi_cli_no_start(tmp_path):
    harness = Harness(tmp_path, path=("az",))
    assert harness.main("aws", "--yes-spend-money") == 2
    assert refusal(harness) == ("cloud-acceptance: the Pulumi CLI is not on PATH: install it "
                                "(https://www.pulumi.com/docs/iac/download-install/) and run `pulumi login`")


def test_no_infra_extra_no_start(tmp_path):
    harness = Harness(tmp_path, modules=())
    assert harness.main("aws", "--yes-spend-money") == 2
    assert refusal(harness) == ("cloud-acceptance: the aws extra is missing from this Python: "
                                ".venv/bin/pip install -e '.[aws]'")


def test_the_other_clouds_extra_is_not_enough(tmp_path):
    harness = Harness(tmp_path, modules=("pulumi.automation", "pulumi_aws"))
    assert harness.main("azure", "--yes-spend-money") == 2
    assert refusal(harness) == ("cloud-acceptance: the azure extra is missing from this Python: "
                                ".venv/bin/pip install -e '.[azure]'")


def test_a_bad_setting_is_refused_before_any_cloud_is_asked(tmp_path):
    harness = Harness(tmp_path)
    assert harness.main("azure", "--yes-spend-money") == 2
    assert refusal(harness).startswith("cloud-acceptance: Pulumi.azure.yaml: deepracer-cloud:sshPublicKey: expected")


@pytest.mark.parametrize("item, says", [("keepBucketOnDestroy=false", "outlive `destroy`"),
                                        ("market=reserved", "deepracer-cloud:market: expected one of spot, on-demand"),
                                        ("workers", "expected KEY=VALUE")])
def test_bad_overrides_are_refused(tmp_path, item, says):
    harness = Harness(tmp_path)
    assert harness.main("aws", "--yes-spend-money", "--config", item) == 2
    assert says in refusal(harness)


def test_a_refusing_cloud_preflight_is_one_line(tmp_path):
    harness = Harness(tmp_path, refuse="no AWS credentials: run `aws configure`, or set AWS_PROFILE")
    assert harness.main("aws", "--yes-spend-money") == 2
    assert harness.stderr.getvalue() == ("cloud-acceptance: no AWS credentials: run `aws configure`, "
                                         "or set AWS_PROFILE\n")
    assert harness.world.calls == []


def test_a_passing_run_prints_the_summary_and_writes_it(tmp_path):
    harness = Harness(tmp_path)
    assert harness.main("aws", "--yes-spend-money", "--config", "workers=2") == 0

    ((cloud, name, config, settings),) = harness.made
    assert (cloud, name) == ("aws", STACK)
    assert config["deepracer-cloud:workers"] == "2" and settings.workers == 2
    assert config["aws:defaultTags.tags.stack"] == STACK
    summary = harness.stdout.getvalue()
    assert (tmp_path / "summary.md").read_text() == summary
    assert summary.splitlines()[:7] == [
        "### deepracer-cloud acceptance on aws: PASSED",
        "",
        f"- stack `{STACK}`, commit `0416588`, started 2026-12-06 10:15 UTC, 28 min in all",
        "- g4dn.2xlarge spot in us-east-1 (about $0.33 per training hour, infra/pricing.py), "
        "image `awsdeepracercommunity/deepracer-simapp:6.0.4-gpu`",
        "",
        "| step | result | seconds | detail |",
        "|---|---|---:|---|",
    ]
    assert summary.splitlines()[7] == ("| up | ok | 1200 | host ready; instanceId i-0abc123def4567890, "
                                       "bucket deepracer-acc-aws-20261206-101500-abc123 |")
    assert summary.splitlines()[-1] == ("| models kept | ok | 0 | s3://bucket/rl-deepracer-0/model/ still holds 14 "
                                        "object(s) |")
    assert len(summary.splitlines()) == 7 + 12
    assert (f"summary written to {tmp_path / 'summary.md'}, the progress log to {tmp_path / 'summary.log'}"
            in harness.stderr.getvalue())
    log = (tmp_path / "summary.log").read_text().splitlines()
    doctor = log.index("--- doctor")
    assert log[doctor:doctor + 6] == ["--- doctor", "    $ sudo -i -u ubuntu deepracer doctor", "    gpu: ok",
                                      "    storage: ok", "    doctor: the host can train",
                                      "--- doctor: ok in 30 s: doctor: the host can train"]


def test_the_summary_goes_to_build_by_default(tmp_path):
    harness = Harness(tmp_path)
    harness.deps.repo_root = tmp_path
    (tmp_path / "Pulumi.aws.yaml").write_text((REPO / "Pulumi.aws.yaml").read_text())
    assert cli.main(["aws", "--yes-spend-money"], harness.deps) == 0
    assert (tmp_path / "build" / "acceptance" / f"{STACK}.md").read_text() == harness.stdout.getvalue()


def test_an_unwritable_summary_file_loses_nothing(tmp_path):
    (tmp_path / "file").write_text("")
    harness = Harness(tmp_path)
    assert cli.main(["aws", "--yes-spend-money", "--summary", str(tmp_path / "file" / "summary.md")], harness.deps) == 0
    assert harness.stdout.getvalue().startswith("### deepracer-cloud acceptance on aws: PASSED\n")
    assert harness.stderr.getvalue().splitlines()[-1] == (
        f"cloud-acceptance: could not write {tmp_path / 'file' / 'summary.md'} (File exists); the summary is above")


def test_a_failing_run_exits_1_and_the_summary_says_which_step(tmp_path):
    world = World()
    world.answers["validate"] = [RemoteResult(2, "", "custom_files/reward_function.py:3: NameError | bad\n")]
    harness = Harness(tmp_path, world)
    assert harness.main("aws", "--yes-spend-money") == 1
    summary = harness.stdout.getvalue()
    assert summary.startswith("### deepracer-cloud acceptance on aws: FAILED\n")
    assert "| validate | FAILED | 30 | exit 2: custom_files/reward_function.py:3: NameError \\| bad |" in summary
    assert "| destroy | ok |" in summary and "Clean up by hand" not in summary


def test_a_failed_destroy_says_how_to_clean_up_by_hand(tmp_path):
    world = World()
    world.stack.destroy_error = RuntimeError("DependencyViolation")
    harness = Harness(tmp_path, world)
    assert harness.main("aws", "--yes-spend-money") == 1
    assert harness.stdout.getvalue().splitlines()[-1] == (
        f"The stack may still hold resources. Clean up by hand: `cd {REPO} && pulumi destroy --stack {STACK} --yes "
        f"&& pulumi stack rm {STACK} --yes (its resources carry the tag stack={STACK})`")


def test_keep_says_how_to_take_it_down_later(tmp_path):
    harness = Harness(tmp_path)
    assert harness.main("aws", "--yes-spend-money", "--keep") == 0
    assert "| destroy | kept |  | --keep: stack acc-aws-20261206-101500 left up |" in harness.stdout.getvalue()
    assert "Clean up by hand" in harness.stdout.getvalue()
    assert "stack.destroy" not in harness.world.calls


def test_ctrl_c_exits_130_after_destroy(tmp_path):
    world = World()
    world.answers["doctor"] = [KeyboardInterrupt()]
    harness = Harness(tmp_path, world)
    assert harness.main("aws", "--yes-spend-money") == 130
    assert "Interrupted with Ctrl-C." in harness.stdout.getvalue()
    assert world.calls[-2:] == ["stack.destroy", "stack.remove"]


def test_azure_runs_as_the_admin_user(tmp_path):
    harness = Harness(tmp_path)
    assert harness.main("azure", "--yes-spend-money", "--config", f"sshPublicKey={SSH_KEY}",
                        "--config", "adminUsername=racer") == 0
    assert "host: sudo -i -u racer deepracer doctor" in harness.world.calls
    assert "- Standard_NC8as_T4_v3 spot in eastus" in harness.stdout.getvalue()


def run_script(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "scripts" / "cloud-acceptance"), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_the_entry_point_refuses_without_an_opt_in():
    done = run_script("aws", env={"DR_ACCEPTANCE": ""})
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("cloud-acceptance: this creates a GPU host in your aws account")
    assert len(done.stderr.splitlines()) == 1


def test_the_entry_point_refuses_without_the_pulumi_cli():
    # PATH without pulumi (none is installed here either); the interpreter is found by the script's own path.
    done = run_script("azure", "--yes-spend-money", env={"PATH": "/usr/bin:/bin"})
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == ("cloud-acceptance: the Pulumi CLI is not on PATH: install it "
                           "(https://www.pulumi.com/docs/iac/download-install/) and run `pulumi login`\n")


def test_importing_the_command_loads_no_cloud_sdk():
    code = ("import sys, infra.acceptance.cli, infra.acceptance.journey; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pulumi', 'boto3', 'botocore', 'azure')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


@pytest.mark.parametrize("cloud, user", [("aws", "ubuntu"), ("azure", "racer")])
def test_the_real_seams_are_wired_after_their_preflights(monkeypatch, cloud, user):
    from infra.acceptance import aws_cloud, azure_cloud, pulumi_stack, stack_config

    checked: list[str] = []
    monkeypatch.setattr(pulumi_stack, "preflight", lambda root, env: checked.append(f"pulumi {root}"))
    monkeypatch.setattr(aws_cloud, "preflight", lambda settings: checked.append("aws"))
    monkeypatch.setattr(azure_cloud, "preflight", lambda: checked.append("azure"))
    template = stack_config.read_template(REPO / f"Pulumi.{cloud}.yaml")
    config = stack_config.stack_config(cloud, f"acc-{cloud}-1", template,
                                       {"deepracer-cloud:sshPublicKey": SSH_KEY, "deepracer-cloud:adminUsername": "racer"}
                                       if cloud == "azure" else {})
    made = cli._real_cloud(cloud, f"acc-{cloud}-1", config, stack_config.validate(cloud, config), print)

    assert checked == [f"pulumi {REPO}", cloud]
    assert (made.name, made.user, made.stack.name) == (cloud, user, f"acc-{cloud}-1")
    assert isinstance(made.stack, pulumi_stack.PulumiStack)


@pytest.fixture
def pulumi_cli(tmp_path: Path) -> Path:
    """A stand-in Pulumi CLI for the real Automation API: `version`, and `whoami` of a local backend; anything
    else (stack init, up ...) fails the test, since nothing may be created before every preflight passed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    script.write_text('#!/bin/sh\necho "$*" >> "$(dirname "$0")/calls"\ncase "$*" in\n'
                      '  version) echo v3.272.0 ;;\n'
                      '  *whoami*) echo \'{"user": "me", "url": "file://~", "organizations": []}\' ;;\n'
                      '  *) echo "unexpected: $*" >&2; exit 1 ;;\nesac\n')
    script.chmod(0o755)
    return bin_dir


def scrubbed_env(bin_dir: Path, tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PULUMI_"))}
    env.update(PATH=f"{bin_dir}:/usr/bin:/bin", HOME=str(tmp_path), AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=str(tmp_path / "aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws-creds"),
               **extra)
    return env


def test_the_real_preflights_refuse_in_turn_before_anything_is_created(pulumi_cli, tmp_path):
    def entry(**extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(REPO / "scripts" / "cloud-acceptance"), "aws", "--yes-spend-money"],
                              capture_output=True, text=True, env=scrubbed_env(pulumi_cli, tmp_path, **extra),
                              timeout=120)

    done = entry()
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == ("cloud-acceptance: the local Pulumi backend (file://~) needs PULUMI_CONFIG_PASSPHRASE (or "
                           "PULUMI_CONFIG_PASSPHRASE_FILE) for the stack's secrets: export it as for `pulumi up`\n")
    done = entry(PULUMI_CONFIG_PASSPHRASE="")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("cloud-acceptance: no AWS credentials: run `aws configure`")
    calls = (pulumi_cli / "calls").read_text().splitlines()
    assert all(call == "version" or call.endswith("whoami --json") for call in calls), calls
    assert not list(REPO.glob("Pulumi.acc-*.yaml"))
