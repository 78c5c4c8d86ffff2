"""The one way to open this machine for a command: its settings, custom files, storage and Docker engine.

The CLI and the systemd-driven paths (resume at boot, the time limit's timer, the spot watcher, the idle check)
all build their Host here, from the same run.env and system.env, so a path started by a unit sees what `train`
saw. Storage on azure/local is MinIO on this host: opening it starts MinIO when it is not running.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional

from session.core.config import LoadedConfig, RunConfig, SystemConfig, load_config
from session.core.paths import custom_files_dir
from session.engine.containers import Engine
from session.storage.keeper import Keeper
from session.storage.minio import ensure_minio, needs_minio
from session.storage.mirror_sync import Mirror
from session.storage.s3 import Storage

DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"


@dataclass
class Host:
    """What a command needs from this machine: the configs, the custom files, the bucket and the engine.
    `keeper` keeps the models beyond the machine where the bucket does not (Azure's MinIO; a local machine's,
    when asked); `mirror` replaces where it keeps them (tests: Azurite, moto)."""

    system: SystemConfig
    run: RunConfig
    custom_files: Path
    engine: Engine
    storage: Storage
    docker_socket: str = DEFAULT_DOCKER_SOCKET
    warnings: tuple = field(default_factory=tuple)
    mirror: Optional[Mirror] = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def keeper(self) -> Keeper:
        return Keeper(self.system, self.storage, self.mirror)


HostFactory = Callable[[Path, Path], Host]


def storage_for(system: SystemConfig) -> Storage:
    """The working bucket as this host sees it: the instance role on AWS, MinIO with keys elsewhere.
    Nothing is started: for readers that only look (status, the watchdog)."""
    return Storage(system.local_s3_bucket, system.aws_app_region, endpoint_url=system.local_s3_endpoint_url,
                   access_key=system.local_access_key_id, secret_key=system.local_secret_access_key)


def open_storage(system: SystemConfig, engine: Optional[Engine] = None) -> Storage:
    """The working bucket, ready to use: on azure/local MinIO is started first if it isn't running."""
    storage = storage_for(system)
    if needs_minio(system):
        ensure_minio(engine or Engine(), system, storage=storage)
    return storage


def docker_socket_path(environ: Optional[Mapping[str, str]] = None) -> str:
    host = (environ if environ is not None else os.environ).get("DOCKER_HOST", "")
    return host[len("unix://"):] if host.startswith("unix://") else DEFAULT_DOCKER_SOCKET


def open_host(run_env: Path, system_env: Path, *, loaded: Optional[LoadedConfig] = None,
              engine: Optional[Engine] = None) -> Host:
    """The Host `train` and every other command builds from these files (`loaded` when the caller read them
    already, to print their warnings)."""
    loaded = loaded or load_config(run_env, system_env)
    engine = engine or Engine()
    return Host(loaded.system, loaded.run, custom_files_dir(Path(run_env)), engine, open_storage(loaded.system, engine),
                docker_socket=docker_socket_path(), warnings=loaded.warnings)
