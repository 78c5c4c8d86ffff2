"""Stand-ins for the host commands the bootstrap's GPU step and the scratch-disk script call, for a rehearsal
of those scripts here, where no GPU, kernel module, apt archive, LVM or systemd can be changed.

One multi-call program: each command name is a symlink to this file, which acts by `argv[0]`, records every
call, and keeps the host's state (packages, kernel, mounts, disks) in a JSON file named by `$HOST_STATE`. The
outputs are the real commands' formats; where each comes from is said beside it. What the real command
refuses, the stand-in refuses with the real message and exit code.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Callable, NoReturn

COMMANDS = ("apt-get", "apt-cache", "ubuntu-drivers", "uname", "modprobe", "nvidia-smi", "nvidia-ctk",
            "systemctl", "sleep", "findmnt", "lsblk", "blkid", "mkfs.ext4", "mount", "docker", "usermod")
# Installed by a package, not there from the start: nvidia-smi with nvidia-utils-*, docker with docker.io (unless the
# host's state says Docker is there already).
_FROM_PACKAGES = {"nvidia-utils-": "nvidia-smi", "docker.io": "docker"}


def install(bin_dir: Path, commands: tuple[str, ...] = COMMANDS) -> None:
    """Puts the stand-ins into bin_dir (to go first on PATH). nvidia-smi appears when nvidia-utils is installed."""
    program = bin_dir / "host_commands.py"
    program.write_text(f"#!{sys.executable}\n" + Path(__file__).read_text())
    program.chmod(0o755)
    for name in commands:
        if name not in _FROM_PACKAGES.values():
            (bin_dir / name).symlink_to(program)


def install_docker(bin_dir: Path) -> None:
    """A host that has Docker already (its state's "docker" says how it is configured)."""
    (bin_dir / "docker").symlink_to(bin_dir / "host_commands.py")


class _Host:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.state = json.loads(path.read_text())

    def save(self) -> None:
        self.path.write_text(json.dumps(self.state, indent=1))


def _fail(host: _Host, code: int, message: str) -> NoReturn:
    host.save()
    print(message, file=sys.stderr)
    sys.exit(code)


# -- apt ----------------------------------------------------------------------------------------------------------
# Messages as apt 2.7 (Ubuntu 24.04) prints them: apt-pkg/contrib/fileutl.cc (GetLock) and apt-private/private-
# install.cc / private-show.cc.
LOCK_HELD = ("E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1789 (unattended-upgr)\n"
             "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?")


def _closure(archive: dict[str, list[str]], names: list[str]) -> list[str]:
    wanted: list[str] = []
    todo = list(names)
    while todo:
        name = todo.pop(0)
        if name not in wanted:
            wanted.append(name)
            todo.extend(archive[name])
    return wanted


def _apt_get(host: _Host, args: list[str]) -> None:
    options = [args[i + 1] for i, a in enumerate(args) if a == "-o"]
    words = [a for i, a in enumerate(args) if not a.startswith("-") and (i == 0 or args[i - 1] != "-o")]
    if words[0] == "update":
        return
    assert words[0] == "install", args
    if host.state.get("dpkg_lock_held"):
        if not any(o.startswith("DPkg::Lock::Timeout=") for o in options):
            _fail(host, 100, LOCK_HELD)
        # With a timeout apt waits for the lock (apt-pkg/contrib/fileutl.cc prints this while it waits).
        print("Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1789 "
              "(unattended-upgr)... 12s")
        host.state["dpkg_lock_held"] = False
    archive = host.state["archive"]
    for name in words[1:]:
        if name not in archive:
            _fail(host, 100, f"E: Unable to locate package {name}")
    installed = host.state["installed"]
    for name in _closure(archive, words[1:]):
        if name not in installed:
            installed.append(name)
            print(f"Setting up {name} ...")
            for prefix, command in _FROM_PACKAGES.items():
                link = Path(host.state["bin"]) / command
                if name.startswith(prefix) and not link.exists():
                    link.symlink_to(Path(host.state["bin"]) / "host_commands.py")
            if name == "docker.io":
                host.state.setdefault("docker", {"daemon_json": None, "default_runtime": "runc"})


def _apt_cache(host: _Host, args: list[str]) -> None:
    assert args[0] == "show", args
    name = args[-1]
    if name not in host.state["archive"]:
        _fail(host, 100, f"N: Unable to locate package {name}\nE: No packages found")
    print(f"Package: {name}\nArchitecture: amd64\nSection: restricted/kernel\n")


def _ubuntu_drivers(host: _Host, args: list[str]) -> None:
    if args[:2] == ["list", "--gpgpu"]:
        # Recorded by the test (ubuntu-drivers-common's `list` command: one line per driver, most preferred first).
        print(host.state["ubuntu_drivers_list"], end="")
        return
    assert args[:2] == ["install", "--gpgpu"], args
    # What install_gpgpu() in ubuntu-drivers-common 0.9.7.x does: the preferred branch's headless-no-dkms
    # package and the linux-modules metapackage of the kernel flavour (modules for the archive's newest kernel),
    # through apt-get without a lock timeout, and nothing else (no nvidia-utils).
    first = host.state["ubuntu_drivers_list"].splitlines()[0]
    branch = first.split(",")[0].removeprefix("nvidia-driver-")
    meta = first.rsplit(" ", 1)[1].rstrip(")")
    host.save()
    os.execvp("apt-get", ["apt-get", "install", "-o", "DPkg::options::=--force-confnew", "--no-install-recommends",
                          "-y", f"nvidia-headless-no-dkms-{branch}", meta])


# -- kernel and driver ------------------------------------------------------------------------------------------
def _modules_for(host: _Host, kernel: str) -> bool:
    return any(p.startswith("linux-modules-nvidia-") and p.endswith(f"-{kernel}") for p in host.state["installed"])


def _uname(host: _Host, args: list[str]) -> None:
    assert args == ["-r"], args
    print(host.state["kernel"])


def _modprobe(host: _Host, args: list[str]) -> None:
    assert args == ["nvidia"], args
    kernel = host.state["kernel"]
    if not _modules_for(host, kernel):
        # kmod's message for a module that is not installed for the running kernel.
        _fail(host, 1, f"modprobe: FATAL: Module nvidia not found in directory /lib/modules/{kernel}")
    host.state["module_loaded"] = True


def _nvidia_smi(host: _Host, args: list[str]) -> None:
    assert args == ["-L"], args
    if not host.state.get("module_loaded"):
        # nvidia-smi(1), RETURN VALUE: 9 means the NVIDIA driver is not loaded.
        print("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the "
              "latest NVIDIA driver is installed and running.")
        host.save()
        sys.exit(9)
    print("GPU 0: Tesla T4 (UUID: GPU-1f6e4c2a-9a3b-7c55-0e2d-5b8f3a91c4d7)")


def _nvidia_ctk(host: _Host, args: list[str]) -> None:
    if args[:2] == ["runtime", "configure"]:
        # nvidia-container-toolkit cmd/nvidia-ctk/runtime/configure and pkg/config/engine/docker: the existing
        # /etc/docker/daemon.json is loaded and kept, `runtimes.nvidia` added, `default-runtime` set with
        # --set-as-default; the daemon reads it at its next start ("restart the Docker daemon", it says).
        assert "--runtime=docker" in args, args
        docker = host.state["docker"]
        config = json.loads(docker["daemon_json"] or "{}")
        config.setdefault("runtimes", {})["nvidia"] = {"args": [], "path": "nvidia-container-runtime"}
        if "--set-as-default" in args:
            config["default-runtime"] = "nvidia"
        docker["daemon_json"] = json.dumps(config, indent=4)
        print("INFO[0000] Wrote updated config to /etc/docker/daemon.json\n"
              "INFO[0000] It is recommended that docker daemon be restarted.")
        return
    print("NVIDIA Container Toolkit CLI version 1.17.8\ncommit: f202b80a9b9d0db00d9b1d73c0128c8962c55f4d")


def _docker(host: _Host, args: list[str]) -> None:
    """`docker info --format '{{.DefaultRuntime}}'`: the runtime the daemon started with."""
    assert args[:3] == ["info", "--format", "{{.DefaultRuntime}}"], args
    print(host.state["docker"]["default_runtime"])


def _usermod(host: _Host, args: list[str]) -> None:
    assert args[:2] == ["-aG", "docker"], args


def _systemctl(host: _Host, args: list[str]) -> None:
    if args[:2] == ["restart", "docker"]:  # the daemon reads daemon.json as it starts
        docker = host.state["docker"]
        docker["default_runtime"] = json.loads(docker["daemon_json"] or "{}").get("default-runtime", "runc")
        return
    if args[:1] == ["cat"]:
        unit = host.state.get("units", {}).get(args[1])
        if unit is None:
            _fail(host, 1, f"No files found for {args[1]}.")
        print(unit, end="")


def _sleep(host: _Host, args: list[str]) -> None:
    """Recorded, not slept: the rehearsal does not wait out retry pauses."""


# -- disks ----------------------------------------------------------------------------------------------------
def _findmnt(host: _Host, args: list[str]) -> None:
    assert args[:2] == ["-rno", "SOURCE"] and args[2] == "--mountpoint", args
    source = host.state["mounts"].get(args[3])
    if source is None:
        _fail(host, 1, "")
    print(source)


def _lsblk(host: _Host, args: list[str]) -> None:
    assert args == ["-dnpo", "NAME,MODEL"], args
    print(host.state["lsblk"], end="")


def _blkid(host: _Host, args: list[str]) -> None:
    assert args[:3] == ["-o", "value", "-s"], args
    value = host.state["disks"].get(args[4], {}).get(args[3])
    if not value:
        host.save()
        sys.exit(2)  # blkid(8): 2 when the token was not found or no device could be identified
    print(value)


def _mkfs(host: _Host, args: list[str]) -> None:
    device = args[-1]
    if host.state["disks"].get(device, {}).get("TYPE"):
        _fail(host, 1, f"{device} contains a {host.state['disks'][device]['TYPE']} file system")
    host.state["disks"][device] = {"TYPE": "ext4", "LABEL": args[args.index("-L") + 1]}


def _mount(host: _Host, args: list[str]) -> None:
    target = args[-1]
    if "--bind" in args:
        source = host.state["mounts"].get(args[-2], args[-2])  # findmnt names a bind of a mount by its device
    else:
        source = args[-2]
        if host.state["disks"].get(source, {}).get("TYPE") not in ("ext4",):
            _fail(host, 32, f"mount: {target}: wrong fs type, bad option, bad superblock on {source}, missing "
                            "codepage or helper program, or other error.")
    host.state["mounts"][target] = source


HANDLERS: dict[str, Callable[[_Host, list[str]], None]] = {
    "apt-get": _apt_get, "apt-cache": _apt_cache, "ubuntu-drivers": _ubuntu_drivers, "uname": _uname,
    "modprobe": _modprobe, "nvidia-smi": _nvidia_smi, "nvidia-ctk": _nvidia_ctk, "systemctl": _systemctl,
    "sleep": _sleep, "findmnt": _findmnt, "lsblk": _lsblk, "blkid": _blkid, "mkfs.ext4": _mkfs, "mount": _mount,
    "docker": _docker, "usermod": _usermod,
}


def main() -> None:
    name, args = Path(sys.argv[0]).name, sys.argv[1:]
    host = _Host(Path(os.environ["HOST_STATE"]))
    host.state["calls"].append([name, *args])
    HANDLERS[name](host, args)
    host.save()


if __name__ == "__main__":
    main()
