"""Can this host train? `deepracer doctor`: a smoke check with the real simulator image on the real host.

Each check is one function that returns a `Check` (name, ok|warn|fail|skip, cause, fix): data, so the CLI
prints them, `--json` hands them to programs, and the first boot's last step reports the first failure to
`pulumi up`. The checks that matter run the way training runs, not a way of their own:

- gpu: a container of the image on `sagemaker-local` through Docker's DEFAULT runtime, with no device
  request, runs `nvidia-smi -L`: bootstrap makes nvidia the default runtime and the image sets
  NVIDIA_VISIBLE_DEVICES=all, so any container of it gets the GPU, whoever starts it and however.
- storage: the image's own python3 and boto3, in a container on that network, with the environment the
  simulator's containers get (StorageAccess: on AWS no keys at all, the instance role through IMDS, which a
  container behind the bridge reaches only with hop limit 2; on azure/local MinIO at its in-network name with
  the MinIO keys), lists, puts, reads back and deletes one object under doctor/ (session/checks/doctor_probe.py).
- compose: Compose v2 inside the image (as the trainer runs it, Docker socket mounted) brings up a one-service
  project written as SageMaker's local mode writes the sibling's: `sagemaker-local` by name and NOT external,
  and for a -gpu image (`local_gpu`) the GPU as a Compose device reservation, served by the NVIDIA container
  toolkit's hook; the service runs `nvidia-smi -L` first. That is the trainer's sibling's exact path to the
  network and the GPU. Compose can refuse the network and still exit 0, so the verdict is the container it
  made and the line it relayed, not its exit code.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import uuid
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from session.core.config import SystemConfig, load_system_config
from session.core.envfile import ConfigError
from session.engine.containers import LABEL_ROLE, LABEL_RUN, ContainerSpec, Engine, EngineError, Finished, Mount
from session.engine.specs import NETWORK, SAGEMAKER_TMP, StorageAccess, image_of, wants_gpu
from session.host.factory import storage_for
from session.storage.minio import DATA_DIR, MinioError, ensure_minio, needs_minio
from session.storage.s3 import StorageError

ROLE = "doctor"
CONTAINER_TIMEOUT_S = 180.0  # a container that has not finished by then hangs (IMDS, compose): say so
COMPOSE_MARKER = "deepracer-doctor-compose-ok"
STORAGE_MARKER = "DOCTOR-STORAGE"
PS_MARKER = "DOCTOR-COMPOSE-PS"
DEFAULT_RUNTIME_FIX = ("make nvidia Docker's default runtime: sudo nvidia-ctk runtime configure --runtime=docker "
                       "--set-as-default && sudo systemctl restart docker")
GIB = 1024 ** 3


class Status(str, Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"  # not applicable (a cpu image has no GPU to find), or a check it needs failed first


@dataclass(frozen=True)
class Check:
    """One check's verdict. `cause`: what was seen (for ok, the evidence); `fix`: what to do about it."""

    name: str
    status: Status
    cause: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL

    def line(self) -> str:
        """One line naming the check, the cause and the fix."""
        fix = f"; fix: {self.fix}" if self.fix and self.status in (Status.FAIL, Status.WARN) else ""
        return " ".join(f"{self.name}: {self.cause}{fix}".split())

    def as_dict(self) -> dict[str, str]:
        return {**asdict(self), "status": self.status.value}


@dataclass(frozen=True)
class DiskNeed:
    """Free space a path needs: below `fail_gib` training cannot run through, below `warn_gib` it gets tight."""

    path: str
    what: str
    fail_gib: float
    warn_gib: float


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return not any(check.failed for check in self.checks)

    @property
    def summary(self) -> str:
        """The one line a deployer sees: the first failure, else how many checks passed."""
        failed = [check for check in self.checks if check.failed]
        if failed:
            more = f" (and {len(failed) - 1} more: deepracer doctor)" if len(failed) > 1 else ""
            return f"{failed[0].line()}{more}"
        warned = sum(check.status is Status.WARN for check in self.checks)
        return f"this host can train ({len(self.checks)} checks, {warned} warnings)"

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "summary": self.summary, "checks": [check.as_dict() for check in self.checks]}


# --- the host's settings and engine -------------------------------------------------------------------------

def check_system_env(path: Path) -> tuple[Check, Optional[SystemConfig]]:
    if not path.is_file():
        return Check("system-env", Status.FAIL, f"{path} not found",
                     "the first boot writes it (cloud-init); give another with --system-env"), None
    try:
        system = load_system_config(path, environ={})
    except ConfigError as error:
        return Check("system-env", Status.FAIL, str(error), f"correct {path}"), None
    return Check("system-env", Status.OK, f"{path}: DR_CLOUD={system.cloud}, image {system.simapp_image}"), system


def check_engine(engine: Engine) -> tuple[Check, dict[str, Any]]:
    try:
        info = engine.info()
    except EngineError as error:
        return Check("docker", Status.FAIL, str(error), "start Docker: sudo systemctl start docker"), {}
    return Check("docker", Status.OK, f"Docker {info.get('ServerVersion', '?')}, default runtime "
                                      f"{info.get('DefaultRuntime', '?')}, data root {info.get('DockerRootDir', '?')}"
                 ), info


def check_image(engine: Engine, image: str) -> Check:
    try:
        present = engine.image_present(image)
    except EngineError as error:
        return Check("image", Status.FAIL, str(error))
    if not present:
        return Check("image", Status.FAIL, f"{image} is not on this host",
                     f"docker pull {image} (the first boot's simapp-image step pulls it)")
    return Check("image", Status.OK, f"{image} is on this host")


def check_network(engine: Engine, network: str = NETWORK) -> Check:
    """The network as `train` makes it (session.engine.containers.Engine.ensure_network): with Compose's labels."""
    try:
        engine.ensure_network(network)
    except EngineError as error:
        return Check("network", Status.FAIL, str(error), "then run deepracer doctor again")
    return Check("network", Status.OK, f"{network} exists with Docker Compose's labels")


# --- disk ----------------------------------------------------------------------------------------------------

def disk_needs(system: SystemConfig, docker_root: str) -> list[DiskNeed]:
    """What a run writes, and where.

    Docker's data root: the image is already there; a run adds the writable layers and logs of the trainer, its
    SageMaker sibling and every worker (a few GB over a long run), so below 10 GiB it may stop half-way; 25 GiB
    is also what pulling the next simapp release beside this one takes (~10 GB download, ~20 GB unpacked).
    /tmp/sagemaker: SageMaker-local's job folders, where the sibling keeps the model and its checkpoints before
    they reach the bucket (hundreds of MB per checkpoint kept): 5 GiB, tight below 10. MinIO's data on the scratch
    disk (azure/local: every model and its checkpoints live there): 5 GiB, tight below 20.
    """

    needs = [DiskNeed(docker_root, "Docker's data root", 10, 25),
             DiskNeed(SAGEMAKER_TMP, "SageMaker's job folders", 5, 10)]
    if needs_minio(system):
        needs.append(DiskNeed(DATA_DIR, "MinIO's data", 5, 20))
    return needs


def _existing(path: str) -> Path:
    """The path, or its nearest existing parent (a folder the first run creates is on its parent's disk)."""
    current = Path(path)
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def check_disk(needs: Sequence[DiskNeed], usage: Callable[[Path], Any] = shutil.disk_usage) -> Check:
    """One verdict for all paths; paths on one file system add their needs up."""
    by_device: dict[int, list[tuple[DiskNeed, Path]]] = {}
    for need in needs:
        existing = _existing(need.path)
        by_device.setdefault(existing.stat().st_dev, []).append((need, existing))
    worst, parts, short = Status.OK, [], []
    for group in by_device.values():
        free_gib = usage(group[0][1]).free / GIB
        fail_gib, warn_gib = sum(n.fail_gib for n, _ in group), sum(n.warn_gib for n, _ in group)
        names = " and ".join(f"{n.path} ({n.what})" for n, _ in group)
        status = Status.FAIL if free_gib < fail_gib else Status.WARN if free_gib < warn_gib else Status.OK
        if status is Status.FAIL or (status is Status.WARN and worst is Status.OK):
            worst = status
        needed = fail_gib if status is Status.FAIL else warn_gib
        text = f"{names}: {free_gib:.1f} GiB free"
        if status is not Status.OK:
            text += f", {'needs' if status is Status.FAIL else 'tight below'} {needed:g} GiB"
            short.append(str(group[0][1]))
        parts.append(text)
    fix = (f"free space on {', '.join(short)} (docker system prune removes stopped containers and unused images; "
           f"deepracer models shows what the bucket holds) or give the host a larger disk") if short else ""
    return Check("disk", worst, "; ".join(parts), fix)


# --- containers of the simulator image on the training network ------------------------------------------------

def _spec(image: str, check: str, command: str, environment: Optional[dict[str, str]] = None,
          mounts: tuple[Mount, ...] = (), network: str = NETWORK) -> ContainerSpec:
    return ContainerSpec(name=f"deepracer-doctor-{check}", image=image, command=(command,),
                         environment=environment or {}, labels={LABEL_RUN: "host", LABEL_ROLE: ROLE},
                         mounts=mounts, network=network)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "it printed nothing"


def check_gpu(engine: Engine, system: SystemConfig, default_runtime: str,
              timeout_s: float = CONTAINER_TIMEOUT_S) -> Check:
    image = image_of(system)
    if not wants_gpu(system):
        return Check("gpu", Status.SKIP, f"cpu image ({system.simapp_version}): no GPU needed")
    where = f"a container of {image} on {NETWORK} through Docker's default runtime ({default_runtime or '?'})"
    try:
        result = engine.run(_spec(image, "gpu", "nvidia-smi -L"), timeout_s)
    except EngineError as error:
        return Check("gpu", Status.FAIL, f"{where} did not start: {error}", _gpu_fix(default_runtime))
    gpus = [line.strip() for line in result.output.splitlines() if re.match(r"\s*GPU \d+:", line)]
    if result.exit_code == 0 and gpus:
        return Check("gpu", Status.OK, f"{'; '.join(gpus)} in {where}")
    seen = "timed out" if result.timed_out else f"exited {result.exit_code}: {_last_line(result.output)}"
    fix = _gpu_fix(default_runtime)
    return Check("gpu", Status.FAIL, f"no GPU in {where}: nvidia-smi -L {seen}", fix)


def _gpu_fix(default_runtime: str) -> str:
    if default_runtime != "nvidia":
        return DEFAULT_RUNTIME_FIX
    return ("check the driver on the host (nvidia-smi -L) and the NVIDIA container toolkit (nvidia-ctk --version), "
            "then sudo systemctl restart docker")


def _probe_text() -> str:
    return (Path(__file__).resolve().parent / "doctor_probe.py").read_text()


def _storage_fix(system: SystemConfig, code: str, stage: str) -> tuple[str, str]:
    """(what it means, what to do) for the probe's error code on this cloud."""
    bucket = system.local_s3_bucket
    aws = system.cloud == "aws"
    if code == "NoCredentials":
        if aws:
            return ("the container got no credentials from the instance role through IMDS",
                    "the instance needs its IAM role and a metadata hop limit of 2 (aws ec2 "
                    "modify-instance-metadata-options --instance-id <id> --http-put-response-hop-limit 2)")
        return ("the container got no MinIO keys", "set DR_LOCAL_ACCESS_KEY_ID and DR_LOCAL_SECRET_ACCESS_KEY in "
                                                   "system.env")
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId", "ExpiredToken",
                "InvalidToken"):
        if aws:
            return ("S3 refused the instance role's credentials",
                    "check the instance profile attached to the instance "
                    "(aws ec2 describe-iam-instance-profile-associations)")
        return ("MinIO refused the keys in system.env (DR_LOCAL_ACCESS_KEY_ID / DR_LOCAL_SECRET_ACCESS_KEY)",
                "make them MinIO's root keys: docker rm -f minio, and the next deepracer command starts it with "
                "system.env's keys")
    if code in ("AccessDenied", "AllAccessDisabled", "403"):
        who = "the instance role" if aws else "MinIO's keys"
        return (f"{who} may not {stage} in s3://{bucket}/doctor/",
                f"grant {who} s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on {bucket}")
    if code == "NoSuchBucket":
        return (f"bucket {bucket} does not exist", "check DR_LOCAL_S3_BUCKET in system.env")
    if code in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"):
        if aws:
            return ("S3 cannot be reached from the training network", "check the instance's route to the internet "
                                                                       "(or an S3 gateway endpoint)")
        return (f"{system.minio_url} cannot be reached from the training network",
                f"is MinIO running on {NETWORK}? docker ps --filter name=minio")
    return (f"the S3 API answered {code}", "see the message; deepracer validate checks the bucket from the host")


def check_storage(engine: Engine, system: SystemConfig, prepare: Optional[Callable[[], None]] = None,
                  timeout_s: float = CONTAINER_TIMEOUT_S) -> Check:
    """`prepare`: what `train` does first (on azure/local: start MinIO and create the bucket in it)."""
    image = image_of(system)
    if prepare is not None:
        try:
            prepare()
        except (EngineError, MinioError, StorageError) as error:
            return Check("storage", Status.FAIL, f"before the containers: {error}",
                         "see the cause; `deepracer validate` shows the same from the host")
    access = StorageAccess.from_system(system)
    key = f"doctor/{socket.gethostname()}-{uuid.uuid4().hex[:8]}.txt"
    environment = {**access.environment(), "AWS_REGION": system.aws_app_region,
                   "DOCTOR_BUCKET": system.local_s3_bucket, "DOCTOR_KEY": key, "DOCTOR_PROBE": _probe_text()}
    how = ("the instance role through IMDS" if system.cloud == "aws"
           else f"{access.endpoint_url} with the MinIO keys")
    where = f"s3://{system.local_s3_bucket}/doctor/ from a container on {NETWORK} ({how})"
    try:
        result = engine.run(_spec(image, "storage", 'python3 -c "$DOCTOR_PROBE"', environment), timeout_s)
    except EngineError as error:
        return Check("storage", Status.FAIL, f"the probe's container did not start: {error}")
    found = [line for line in result.output.splitlines() if line.startswith(f"{STORAGE_MARKER} ")]
    if not found:
        seen = "timed out" if result.timed_out else f"exited {result.exit_code}: {_last_line(result.output)}"
        return Check("storage", Status.FAIL, f"python3 with boto3 did not run in {image}: {seen}",
                     f"check that {image} is the simulator image "
                     f"(docker run --rm {image} 'python3 -c \"import boto3\"')")
    outcome = json.loads(found[-1].split(" ", 1)[1])
    if outcome.get("ok"):
        return Check("storage", Status.OK, f"listed, wrote, read back and deleted an object in {where}; "
                                           f"credentials: {outcome.get('credentials')}")
    meaning, fix = _storage_fix(system, str(outcome.get("code")), str(outcome.get("stage")))
    return Check("storage", Status.FAIL, f"{meaning}: {outcome.get('stage')} in {where} failed with "
                                         f"{outcome.get('code')}: {outcome.get('message')}", fix)


def compose_file(image: str, network: str = NETWORK, gpu: bool = False) -> str:
    """A one-service project written as SageMaker's local mode writes the sibling's (sagemaker/local/image.py in
    the SDK the image pins): the network by name and not external, the service on it with an alias, and for
    `local_gpu` (a -gpu image) the GPU as a Compose device reservation. The service proves it ran by its line,
    after `nvidia-smi -L` when it should have the GPU."""
    command = f"nvidia-smi -L && echo {COMPOSE_MARKER}" if gpu else f"echo {COMPOSE_MARKER}"
    reservation = ("    deploy:\n      resources:\n        reservations:\n          devices:\n"
                   "          - count: all\n            capabilities: [gpu]\n") if gpu else ""
    return (f"services:\n  doctor:\n    image: {image}\n    command: [{json.dumps(command)}]\n"
            f"    networks:\n      {network}:\n        aliases: [doctor]\n{reservation}"
            f"networks:\n  {network}:\n    name: {network}\n")


_COMPOSE_SCRIPT = """
echo "$DOCTOR_COMPOSE" > /tmp/deepracer-doctor-compose.yaml
set -- -f /tmp/deepracer-doctor-compose.yaml -p "$DOCTOR_PROJECT"
docker-compose "$@" up --abort-on-container-exit 2>&1
echo "DOCTOR-COMPOSE-UP $?"
docker-compose "$@" ps -a --format json 2>&1 | while read -r line; do echo "DOCTOR-COMPOSE-PS $line"; done
docker-compose "$@" down --timeout 5 2>&1
""".strip()


def check_compose(engine: Engine, system: SystemConfig, docker_socket: str, network: str = NETWORK,
                  timeout_s: float = CONTAINER_TIMEOUT_S) -> Check:
    image = image_of(system)
    project = f"deepracer-doctor-{uuid.uuid4().hex[:8]}"
    environment = {"DOCTOR_COMPOSE": compose_file(image, network, wants_gpu(system)), "DOCTOR_PROJECT": project}
    try:
        result = engine.run(_spec(image, "compose", _COMPOSE_SCRIPT, environment,
                                    (Mount(docker_socket, "/var/run/docker.sock"),), network), timeout_s)
    except EngineError as error:
        return Check("compose", Status.FAIL, f"the container that runs Compose did not start: {error}")
    return judge_compose(result, image, network, wants_gpu(system))


_COMPOSE_REFUSALS = (r"incorrect label", r"error", r"refus|denied|not found|no such")


def judge_compose(result: Finished, image: str, network: str = NETWORK, gpu: bool = False) -> Check:
    """Compose made a container, it exited 0 and its line came through Compose: ok. Otherwise the cause is
    Compose's own words (a label refusal first: Compose may print it and still exit 0)."""
    lines = [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line).rstrip() for line in result.output.splitlines()]
    made = []
    for line in lines:
        if line.startswith(f"{PS_MARKER} "):
            try:
                made.append(json.loads(line.split(" ", 1)[1]))
            except ValueError:
                continue
    ran = [c for c in made if str(c.get("State")) == "exited" and str(c.get("ExitCode")) == "0"]
    relayed = any(line.endswith(f"| {COMPOSE_MARKER}") for line in lines)
    what = f"a service on {network} declared as SageMaker's local mode declares it" + (
        ", with its GPU reservation" if gpu else "")
    if ran and relayed:
        gpus = [line.split("| ", 1)[1] for line in lines if re.search(r"\| GPU \d+:", line)]
        return Check("compose", Status.OK, f"Compose v2 in {image} ran {what}: {ran[0].get('Name')} exited 0"
                                           + (f" and saw {'; '.join(gpus)}" if gpus else ""))
    said = [line.strip() for line in lines if line.strip() and not line.startswith("DOCTOR-")]
    if result.timed_out:
        seen = "it did not finish in time"
    elif not any(line.startswith("DOCTOR-COMPOSE-UP") for line in lines):
        seen = f"the script stopped: {_last_line(result.output)}"
    else:
        found = [line for pattern in _COMPOSE_REFUSALS for line in said if re.search(pattern, line, re.I)]
        seen = found[0] if found else (f"its container {made[0].get('Name')} ended {made[0].get('Status')}: "
                                       f"{_last_line(chr(10).join(said))}" if made else "it made no container")
    if "label" in seen:
        fix = (f"stop what uses {network} (deepracer stop) so that the next deepracer command re-creates it with "
               f"Compose's labels")
    elif gpu and re.search(r"device driver|gpu|nvidia", seen, re.I):
        fix = ("install the NVIDIA container toolkit (its nvidia-container-runtime-hook serves Compose's GPU "
               "reservation), then sudo systemctl restart docker")
    else:
        fix = f"see the cause; docker network inspect {network} shows the network's labels"
    return Check("compose", Status.FAIL, f"Compose v2 in {image} could not run {what}: {seen}", fix)


# --- all of them ----------------------------------------------------------------------------------------------

def _skipped(name: str, reason: str) -> Check:
    return Check(name, Status.SKIP, f"not run: {reason}")


def run_checks(system_env: Path, engine: Engine, docker_socket: str, *,
               prepare_storage: Optional[Callable[[SystemConfig, Engine], None]] = None,
               needs: Optional[Callable[[SystemConfig, str], list[DiskNeed]]] = None,
               timeout_s: float = CONTAINER_TIMEOUT_S) -> Report:
    """Every check in order; one that depends on a failed one is skipped with the reason.

    `prepare_storage`: default `start_minio` (what `train` does before it uses MinIO); `needs`: default
    `disk_needs`."""
    checks: list[Check] = []
    env_check, system = check_system_env(system_env)
    checks.append(env_check)
    engine_check, info = check_engine(engine)
    checks.append(engine_check)
    if system is None or engine_check.failed:
        missing = "system.env" if system is None else "Docker"
        checks += [_skipped(name, f"needs {missing}") for name in ("image", "network", "disk", "gpu", "storage",
                                                                    "compose")]
        return Report(tuple(checks))
    image = check_image(engine, image_of(system))
    network = check_network(engine)
    checks += [image, network, check_disk((needs or disk_needs)(system, str(info.get("DockerRootDir") or
                                                                          "/var/lib/docker")))]
    if image.failed or network.failed:
        reason = f"needs {'the image' if image.failed else NETWORK}"
        checks += [_skipped(name, reason) for name in ("gpu", "storage", "compose")]
        return Report(tuple(checks))
    prepare = prepare_storage or start_minio
    checks.append(check_gpu(engine, system, str(info.get("DefaultRuntime") or ""), timeout_s))
    checks.append(check_storage(engine, system, lambda: prepare(system, engine), timeout_s))
    checks.append(check_compose(engine, system, docker_socket, timeout_s=timeout_s))
    return Report(tuple(checks))


def start_minio(system: SystemConfig, engine: Engine) -> None:
    """On azure/local, MinIO running with the working bucket in it, as `train` makes sure first."""

    if needs_minio(system):
        ensure_minio(engine, system, say=lambda _: None, storage=storage_for(system))


def render(report: Report) -> Iterable[str]:
    """Lines for people: one per check, then the verdict."""
    width = max(len(check.name) for check in report.checks)
    for check in report.checks:
        yield f"{check.status.value:<4}  {check.name:<{width}}  {check.cause}"
        if check.fix and check.status in (Status.FAIL, Status.WARN):
            yield f"{'':<4}  {'':<{width}}  fix: {check.fix}"
    failed = [check.name for check in report.checks if check.failed]
    yield (f"this host cannot train yet: {', '.join(failed)} failed; fix the first, then run deepracer doctor again"
           if failed else report.summary)
