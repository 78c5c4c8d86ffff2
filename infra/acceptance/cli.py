"""`scripts/cloud-acceptance aws|azure`: refusals first (nothing is created), then the journey, then the summary.

Exit codes: 0 every step passed, 1 a step failed, 2 refused (a missing opt-in or prerequisite: one line on stderr),
130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence, TextIO

from infra import pricing
from infra.acceptance import stack_config
from infra.acceptance.errors import Refused
from infra.acceptance.journey import Cloud, Journey
from infra.acceptance.stack_config import Settings
from infra.acceptance.summary import RunFacts, render
from infra.settings import CLOUDS, AwsSettings, SettingsError

REPO_ROOT = Path(__file__).resolve().parents[2]
OPT_IN_FLAG = "--yes-spend-money"
OPT_IN_ENV = "DR_ACCEPTANCE"
# What each cloud's extra (`.[aws]`, `.[azure]`) brings that the journey cannot do without: the stack's provider.
PROVIDER_MODULES = {"aws": "pulumi_aws", "azure": "pulumi_azure_native"}
EXIT_PASSED, EXIT_FAILED, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 130

# (cloud, stack name, stack config, validated settings, say) -> the journey's seams, after the cloud's preflight.
MakeCloud = Callable[[str, str, Mapping[str, str], Settings, Callable[[str], None]], Cloud]


def _real_cloud(cloud: str, name: str, config: Mapping[str, str], settings: Settings,
                say: Callable[[str], None]) -> Cloud:
    from infra.acceptance import aws_cloud, azure_cloud
    from infra.acceptance.pulumi_stack import PulumiStack, preflight

    preflight(REPO_ROOT, os.environ)
    stack = PulumiStack(name, REPO_ROOT, config, say)
    if isinstance(settings, AwsSettings):
        aws_cloud.preflight(settings)
        return aws_cloud.cloud(stack, settings)
    azure_cloud.preflight()
    return azure_cloud.cloud(stack, settings)


def _commit(repo_root: Path) -> str:
    try:
        head = subprocess.run(["git", "-C", str(repo_root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo_root), "status", "--porcelain"], capture_output=True,
                               text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


@dataclass
class Deps:
    """What main reaches outside itself; the tests give fakes."""

    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    which: Callable[[str], Optional[str]] = shutil.which
    has_module: Callable[[str], bool] = lambda name: importlib.util.find_spec(name) is not None
    make_cloud: MakeCloud = _real_cloud
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    commit: Callable[[Path], str] = _commit
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    repo_root: Path = REPO_ROOT
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/cloud-acceptance",
        description="The whole journey on a real cloud account, on a fresh stack: up, doctor, validate, train, "
                    "status, evaluate, car-package, stop, destroy, models kept. Costs money; never runs in CI.")
    parser.add_argument("cloud", choices=CLOUDS)
    parser.add_argument(OPT_IN_FLAG, dest="opt_in", action="store_true",
                        help=f"agree to pay for a GPU host for about an hour (or set {OPT_IN_ENV}=1)")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of Pulumi.<cloud>.yaml for this stack, e.g. --config workers=1 "
                             "(repeatable; KEY without a namespace is deepracer-cloud's)")
    parser.add_argument("--keep", action="store_true", help="leave the stack up for debugging (no destroy)")
    parser.add_argument("--summary", metavar="FILE",
                        help="where the Markdown summary goes too (default: build/acceptance/<stack>.md)")
    return parser


def main(argv: Optional[Sequence[str]] = None, deps: Optional[Deps] = None) -> int:
    deps = deps or Deps()
    args = _parser().parse_args(argv)

    log: list[str] = []

    def say(line: str) -> None:
        log.append(line)
        print(line, file=deps.stderr, flush=True)

    try:
        prepared = _prepare(args, deps, say)
    except (Refused, SettingsError) as error:
        print(f"cloud-acceptance: {error}", file=deps.stderr)
        return EXIT_REFUSED
    cloud, facts = prepared
    outcome = Journey(cloud, keep=args.keep, clock=deps.clock, sleep=deps.sleep, say=say).run()
    text = render(outcome, facts)
    deps.stdout.write(text)  # first: an hour's result must not depend on a writable folder
    path = Path(args.summary) if args.summary else deps.repo_root / "build" / "acceptance" / f"{outcome.stack}.md"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        # Everything shown on the way (Pulumi's output with secrets hidden, each host command's last lines).
        path.with_suffix(".log").write_text("\n".join(log) + "\n")
        say(f"summary written to {path}, the progress log to {path.with_suffix('.log')}")
    except OSError as error:
        say(f"cloud-acceptance: could not write {path} ({error.strerror or error}); the summary is above")
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_PASSED if outcome.passed else EXIT_FAILED


def _prepare(args: argparse.Namespace, deps: Deps, say: Callable[[str], None]) -> tuple[Cloud, RunFacts]:
    """Every refusal, before anything is created or any cloud is asked."""
    if not (args.opt_in or deps.env.get(OPT_IN_ENV) == "1"):
        raise Refused(f"this creates a GPU host in your {args.cloud} account and costs money (about an hour of it); "
                      f"pass {OPT_IN_FLAG} or set {OPT_IN_ENV}=1 to go ahead")
    if deps.which("pulumi") is None:
        raise Refused("the Pulumi CLI is not on PATH: install it (https://www.pulumi.com/docs/iac/download-install/) "
                      "and run `pulumi login`")
    if not all(deps.has_module(name) for name in ("pulumi.automation", PROVIDER_MODULES[args.cloud])):
        raise Refused(f"the {args.cloud} extra is missing from this Python: .venv/bin/pip install -e "
                      f"'.[{args.cloud}]'")
    started = deps.now()
    name = stack_config.stack_name(args.cloud, started)
    template = stack_config.read_template(stack_config.template_path(deps.repo_root, args.cloud))
    overrides = stack_config.parse_overrides(args.config)
    config = stack_config.stack_config(args.cloud, name, template, overrides)
    settings = stack_config.validate(args.cloud, config)
    cloud = deps.make_cloud(args.cloud, name, config, settings, say)
    facts = RunFacts(started_utc=f"{started.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC",
                     commit=deps.commit(deps.repo_root), host=_host(settings), simapp=settings.simapp,
                     repo_root=str(deps.repo_root))
    return cloud, facts


def _host(settings: Settings) -> str:
    if isinstance(settings, AwsSettings):
        hour = pricing.aws_hourly_estimate(settings.instance_type, settings.market, settings.root_volume_gb,
                                           settings.spot_max_price)["totalUsd"]
        where = f"{settings.instance_type} {settings.market} in {settings.region}"
    else:
        hour = pricing.azure_hourly_estimate(settings.vm_size, settings.priority, settings.os_disk_gb,
                                             settings.spot_max_price)["totalUsd"]
        where = f"{settings.vm_size} {settings.priority} in {settings.location}"
    return where + ("" if hour is None else f" (about ${hour:.2f} per training hour, infra/pricing.py)")
