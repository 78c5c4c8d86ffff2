"""Your own Ubuntu machine with an NVIDIA GPU as the training host the clouds get, by one command:

    sudo python3 -m infra.local_prepare            # shows what it will change, asks once
    sudo python3 -m infra.local_prepare --yes      # ... without asking; again later: safe, changes only what differs

It renders the same cloud-config `pulumi up` gives a cloud host (infra/bootstrap.py: system.env, bootstrap.env, the
first boot's scripts and units) for `DR_CLOUD=local`, writes its files as cloud-init would, then runs its commands
(the scratch unit and cloudinit/scripts/bootstrap.sh, step by step as on a cloud host): the same first boot, not a
copy of it. What differs is said, not hidden:

- It looks first (`inspect`): Ubuntu's release, the GPU, a working driver, Docker, its default runtime, the
  container toolkit, and what of ours is already there.
- It shows the plan (`plan`): each file new, changed (backed up first, as `<file>.deepracer-backup-<time>`) or the
  same; what each first-boot step will do on this machine. It never replaces what works without a flag: a driver
  that is installed but does not answer (`--install-driver` lets the bootstrap install Ubuntu's), a Docker whose
  daemon.json names another default runtime (`--set-default-runtime` lets it make nvidia the default, as DRfC's
  prepare.sh does).
- It asks once (or `--yes`), then applies (`apply`). MinIO's keys are kept from an existing system.env (your
  models in /mnt/deepracer stay readable); system.env is readable by root and the user who trains only.
- Models live in MinIO under /mnt/deepracer/minio, as DRfC's Local mode keeps them.

Needs Python 3.10+ and PyYAML (Ubuntu's python3-yaml, which cloud-init brings); nothing else of this repository is
installed for it to run. Exit 0 when the machine is ready, 1 when a step failed (the log says which), 2 when it
refused (a flag is missing, not root, no NVIDIA GPU).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from infra.bootstrap import HostConfig, cloud_config
from infra.package import build_session_archive
from infra.settings import DEFAULT_SIMAPP_VERSION, workers_for_vcpus
from session.core.config import MODEL_COPY, NAME

REPO = Path(__file__).resolve().parents[1]
PACKAGE_PATH = "/opt/deepracer/session.tar.gz"
BUCKET = "deepracer-local"  # MinIO's bucket on this machine
SUPPORTED_UBUNTU = ("22.04", "24.04")
SIMAPP_SOURCE = "awsdeepracercommunity/deepracer-simapp"

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def run_command(argv: Sequence[str]) -> "subprocess.CompletedProcess[str]":
    """A command's exit code and output; a command that is not installed is exit 127, as a shell says."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return subprocess.CompletedProcess(list(argv), 127, "", f"{argv[0]}: not found")


class PrepareError(Exception):
    """This machine cannot be prepared as asked: one line, exit 2."""


@dataclass(frozen=True)
class Machine:
    """What is on this machine before anything is changed."""

    ubuntu: Optional[str]  # VERSION_ID of /etc/os-release when it is Ubuntu
    gpu: Optional[str]  # the NVIDIA device lspci lists
    driver: Optional[str]  # what `nvidia-smi -L` says when the driver answers
    driver_packages: tuple[str, ...]  # nvidia-driver-* / nvidia-headless-* packages dpkg has installed
    docker: Optional[str]  # the Docker Engine's version when it answers
    docker_cli: bool  # the docker command is installed (its daemon may not run)
    default_runtime: Optional[str]  # Docker's default runtime
    configured_runtime: Optional[str]  # "default-runtime" in /etc/docker/daemon.json, if set there
    toolkit: bool  # nvidia-ctk installed
    vcpus: int
    system_env: dict[str, str] = field(default_factory=dict)  # an existing /etc/deepracer/system.env


def inspect(run: Runner = run_command, root: Path = Path("/")) -> Machine:
    """Reads the machine; changes nothing."""
    release = _key_values((root / "etc/os-release").read_text()) if (root / "etc/os-release").is_file() else {}
    lspci = run(["lspci", "-nn"])
    if lspci.returncode == 127:
        raise PrepareError("lspci is not installed (Ubuntu's pciutils): it is how the NVIDIA GPU is found; "
                           "sudo apt-get install -y pciutils")
    gpu = next((line.split(": ", 1)[-1] for line in lspci.stdout.splitlines()
                if "NVIDIA" in line and ("VGA" in line or "3D controller" in line)), None)
    smi = run(["nvidia-smi", "-L"])
    dpkg = run(["dpkg-query", "-W", "-f", "${Package} ${Status}\\n", "nvidia-driver-*", "nvidia-headless-*"])
    packages = tuple(line.split()[0] for line in dpkg.stdout.splitlines() if line.endswith("install ok installed"))
    docker = run(["docker", "version", "--format", "{{.Server.Version}}"])
    runtime = run(["docker", "info", "--format", "{{.DefaultRuntime}}"])
    daemon = root / "etc/docker/daemon.json"
    configured = None
    if daemon.is_file():
        try:
            configured = json.loads(daemon.read_text() or "{}").get("default-runtime")
        except ValueError:
            raise PrepareError(f"{daemon}: not JSON; Docker would not start with it either: fix it first") from None
    env = root / "etc/deepracer/system.env"
    return Machine(
        ubuntu=release.get("VERSION_ID") if release.get("ID") == "ubuntu" else None,
        gpu=gpu,
        driver=smi.stdout.splitlines()[0] if smi.returncode == 0 and smi.stdout.strip() else None,
        driver_packages=packages,
        docker=docker.stdout.strip() if docker.returncode == 0 and docker.stdout.strip() else None,
        docker_cli=run(["docker", "--version"]).returncode == 0,
        default_runtime=runtime.stdout.strip() if runtime.returncode == 0 and runtime.stdout.strip() else None,
        configured_runtime=configured,
        toolkit=run(["nvidia-ctk", "--version"]).returncode == 0,
        vcpus=os.cpu_count() or 2,
        system_env=_key_values(env.read_text()) if env.is_file() else {},
    )


@dataclass(frozen=True)
class Options:
    user: str
    simapp_version: str = DEFAULT_SIMAPP_VERSION
    workers: Optional[int] = None
    install_driver: bool = False
    set_default_runtime: bool = False
    copy_models_to: Optional[str] = None  # DR_MODEL_COPY_URL (session.storage.keeper); None: keep what is there
    copy_profile: Optional[str] = None  # DR_MODEL_COPY_PROFILE


@dataclass(frozen=True)
class FileChange:
    path: str
    state: str  # new | changed | same
    content: bytes
    mode: int
    owner: str  # user:group


@dataclass(frozen=True)
class Plan:
    host: HostConfig
    files: tuple[FileChange, ...]
    steps: tuple[str, ...]  # what each first-boot step will do here, one line each
    commands: tuple[tuple[str, ...], ...]  # cloud-config's runcmd

    def lines(self) -> list[str]:
        out = ["files:"]
        for change in self.files:
            note = {"new": "new", "changed": "changed (the old one is backed up)", "same": "unchanged"}[change.state]
            out.append(f"  {change.path}: {note}")
        out.append("first boot, as on a cloud host:")
        out.extend(f"  {line}" for line in self.steps)
        return out


def host_config(machine: Machine, options: Options) -> HostConfig:
    """The local host's settings; MinIO's keys kept from an existing system.env (its data was written with them)."""
    existing = machine.system_env
    return HostConfig(
        cloud="local", region="us-east-1", bucket=existing.get("DR_LOCAL_S3_BUCKET", BUCKET),
        simapp_image=f"{SIMAPP_SOURCE}:{options.simapp_version}",
        workers=options.workers if options.workers is not None else workers_for_vcpus(machine.vcpus),
        session_package_url=f"file://{PACKAGE_PATH}", status_url="", host_user=options.user,
        minio_access_key=existing.get("DR_LOCAL_ACCESS_KEY_ID") or "deepracer",
        minio_secret_key=existing.get("DR_LOCAL_SECRET_ACCESS_KEY") or secrets.token_hex(20),
        idle_stop_minutes=0,  # a machine you live on is not powered off because training ended
        model_copy_url=_checked(MODEL_COPY, "--copy-models-to",
                                options.copy_models_to or existing.get("DR_MODEL_COPY_URL")),
        model_copy_profile=_checked(NAME, "--copy-profile",
                                    options.copy_profile or existing.get("DR_MODEL_COPY_PROFILE")),
    )


def plan(machine: Machine, options: Options, root: Path = Path("/")) -> Plan:
    """What applying would change, or PrepareError for what it must not do without a flag."""
    if machine.gpu is None:
        raise PrepareError("no NVIDIA GPU found (lspci lists none); the simulator's trainer needs one")
    steps = []
    if machine.driver:
        steps.append(f"gpu-runtime: keep the working driver ({machine.driver})")
    elif machine.driver_packages and not options.install_driver:
        raise PrepareError(f"an NVIDIA driver is installed ({', '.join(machine.driver_packages)}) but nvidia-smi does "
                           "not answer (a reboot after its install?); reboot and run this again, or let it install "
                           "Ubuntu's recommended driver with --install-driver")
    else:
        steps.append("gpu-runtime: install Ubuntu's recommended NVIDIA server driver (ubuntu-drivers), then reboot "
                     "may be needed")
    steps.append("gpu-runtime: keep the NVIDIA container toolkit" if machine.toolkit
                 else "gpu-runtime: install the NVIDIA container toolkit from NVIDIA's apt repository")
    if machine.docker is None and machine.docker_cli:
        steps.append("docker: start Docker (installed, its daemon does not answer) and enable it at boot")
    elif machine.docker is None:
        steps.append("docker: install Ubuntu's docker.io and start it")
    else:
        steps.append(f"docker: keep Docker {machine.docker}")
    if machine.default_runtime != "nvidia":
        if machine.configured_runtime not in (None, "nvidia") and not options.set_default_runtime:
            raise PrepareError(f"/etc/docker/daemon.json sets default-runtime {machine.configured_runtime!r}; the "
                               "simulator needs nvidia as Docker's default (its trainer starts GPU containers "
                               "itself): allow the change with --set-default-runtime (daemon.json is backed up)")
        steps.append("docker: make nvidia Docker's default runtime (nvidia-ctk edits /etc/docker/daemon.json, "
                     "backed up first) and restart Docker")
    steps.append(f"docker: add {options.user} to the docker group")
    steps.append(f"simapp-image: pull {SIMAPP_SOURCE}:{options.simapp_version} if missing (about 10 GB)")
    steps.append("session-package, tracks, custom-files, doctor: the deepracer command in /opt/deepracer/venv, "
                 f"~{options.user}/deepracer with run.env (never overwritten), MinIO's data in /mnt/deepracer/minio")
    host = host_config(machine, options)
    if host.model_copy_url:
        who = f"AWS profile {host.model_copy_profile}" if host.model_copy_profile else (
            "az login" if host.model_copy_url.startswith("https://") else "boto3's default credentials")
        steps.append(f"models: also kept in {host.model_copy_url} after each stop and every 10 minutes, as "
                     f"{options.user}'s {who}")
    files = tuple(_file_change(entry, root) for entry in cloud_config(host)["write_files"])
    commands = tuple(tuple(str(part) for part in command) for command in cloud_config(host)["runcmd"])
    return Plan(host, files, tuple(steps), commands)


def apply(planned: Plan, run: Runner = run_command, root: Path = Path("/"),
          package: Callable[[Path], object] = lambda out: build_session_archive(REPO, out),
          stamp: Optional[str] = None) -> int:
    """Backs up and writes the files, builds the session package, runs the first boot's commands. 0 when the
    bootstrap finished, 1 when a command failed."""
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    for change in planned.files:
        if change.state == "same":
            continue
        target = root / change.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if change.state == "changed":
            shutil.copy2(target, target.with_name(f"{target.name}.deepracer-backup-{stamp}"))
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(change.content)
        os.chmod(partial, change.mode)
        _chown(partial, change.owner, root)
        os.replace(partial, target)
    package((root / PACKAGE_PATH.lstrip("/")).parent)
    daemon = root / "etc/docker/daemon.json"
    if daemon.is_file():  # the docker step's nvidia-ctk edits it in place: keep what it was
        shutil.copy2(daemon, daemon.with_name(f"daemon.json.deepracer-backup-{stamp}"))
    for command in planned.commands:
        result = run(command)
        if result.returncode != 0:
            print(f"failed: {' '.join(command)} (exit {result.returncode}); the first boot's log: "
                  "/var/log/deepracer-bootstrap.log", file=sys.stderr)
            return 1
    return 0


def main(argv: Optional[Sequence[str]] = None, *, run: Runner = run_command, root: Path = Path("/"),
         answer: Callable[[str], str] = input) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m infra.local_prepare", description=__doc__.splitlines()[0])
    parser.add_argument("--yes", action="store_true", help="apply without asking")
    parser.add_argument("--plan", action="store_true", help="show the plan and stop (needs no root)")
    parser.add_argument("--user", help="the user who trains (default: the one who ran sudo)")
    parser.add_argument("--simapp-version", default=DEFAULT_SIMAPP_VERSION, help="the simulator image's tag")
    parser.add_argument("--workers", type=int, help="simulation workers (default: from the vCPUs)")
    parser.add_argument("--install-driver", action="store_true",
                        help="install Ubuntu's driver although a driver package is installed")
    parser.add_argument("--set-default-runtime", action="store_true",
                        help="make nvidia Docker's default although daemon.json names another")
    parser.add_argument("--copy-models-to", metavar="URL",
                        help="also keep the models in s3://BUCKET or https://ACCOUNT.blob.core.windows.net/CONTAINER "
                             "(or /FOLDER inside either; after each stop and every 10 minutes; as the training "
                             "user's AWS profile or az login)")
    parser.add_argument("--copy-profile", metavar="NAME", help="the AWS profile that reaches the --copy-models-to "
                                                                "bucket (default: boto3's chain)")
    args = parser.parse_args(argv)
    user = args.user or os.environ.get("SUDO_USER") or ""
    try:
        if not user or user == "root":
            raise PrepareError("--user: expected the login user who will train (run it with sudo, or name them)")
        _known_user(user, root)
        if not args.plan and os.geteuid() != 0 and root == Path("/"):
            raise PrepareError("run it as root (sudo): it installs packages and writes /etc and /opt")
        machine = inspect(run, root)
        if machine.ubuntu not in SUPPORTED_UBUNTU:
            print(f"warning: this is not Ubuntu {' or '.join(SUPPORTED_UBUNTU)} ({machine.ubuntu or 'not Ubuntu'}); "
                  "the first boot is tested there only", file=sys.stderr)
        planned = plan(machine, Options(user, args.simapp_version, args.workers, args.install_driver,
                                        args.set_default_runtime, args.copy_models_to, args.copy_profile), root)
    except (PrepareError, ValueError) as error:  # ValueError: a value system.env cannot hold (infra.bootstrap)
        print(f"local_prepare: {error}", file=sys.stderr)
        return 2
    for line in planned.lines():
        print(line)
    if args.plan:
        return 0
    if not args.yes and answer("apply? [y/N] ").strip().lower() not in ("y", "yes"):
        print("nothing changed")
        return 0
    code = apply(planned, run, root)
    print("ready: log in again (the docker group), then `deepracer validate`" if code == 0 else
          "not ready: see /var/log/deepracer-bootstrap.log; fix it and run this again (it is safe to)")
    return code


def _checked(kind: Any, option: str, value: Optional[str]) -> Optional[str]:
    """`value` as session.core.config will read it from system.env, or PrepareError naming the option."""
    if not value:
        return None
    try:
        return kind.parse(value)
    except ValueError:
        raise PrepareError(f"{option}: expected {kind.expected}, got {value!r}") from None


def _file_change(entry: dict, root: Path) -> FileChange:
    content = entry["content"].encode()
    if entry.get("encoding") == "gz+b64":
        content = gzip.decompress(base64.b64decode(entry["content"]))
    target = root / entry["path"].lstrip("/")
    state = "new" if not target.exists() else "same" if target.read_bytes() == content else "changed"
    return FileChange(entry["path"], state, content, int(entry["permissions"], 8), entry.get("owner", "root:root"))


def _chown(path: Path, owner: str, root: Path) -> None:
    if root != Path("/"):  # a rehearsal in a folder: its files stay the tester's
        return
    user, _, group = owner.partition(":")
    shutil.chown(path, user, group or None)


def _known_user(user: str, root: Path) -> None:
    if root != Path("/"):
        return
    try:
        pwd.getpwnam(user)
    except KeyError:
        raise PrepareError(f"--user {user}: no such user on this machine") from None


def _key_values(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            values[key] = value.strip().strip('"')
    return values


if __name__ == "__main__":
    raise SystemExit(main())
