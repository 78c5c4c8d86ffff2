"""A STAND-IN GPU for a test's own Docker Engine: NVIDIA's container runtime, its hook and `nvidia-smi`.

No GPU exists here, but the two ways a container gets one on a real host do, and so does their absence:

1. Docker's DEFAULT runtime is NVIDIA's (bootstrap.sh's docker step), and the image sets
   NVIDIA_VISIBLE_DEVICES=all (simapp's Dockerfile.combined does): every container of it gets the GPU with no
   request at all.
2. A device request (`docker run --gpus all`, our own containers; or Compose's
   `deploy.resources.reservations.devices`, which SageMaker's local mode writes for `local_gpu`, the trainer's
   sibling): dockerd's built-in `nvidia` device driver (moby daemon/nvidia_linux.go) is registered only when
   `nvidia-container-runtime-hook` is on dockerd's PATH at start, and adds that hook as an OCI prestart hook
   with NVIDIA_VISIBLE_DEVICES set. Without the hook the daemon refuses the request ("could not select device
   driver").

What plays which part (following nvidia-container-toolkit's cmd/nvidia-container-runtime README: "When a
create command is detected, the incoming OCI runtime specification is modified in place and the command is
forwarded to the low-level runtime"; the hook acts only when the container's NVIDIA_VISIBLE_DEVICES is set and
not "void"/"none"):

- `nvidia-container-runtime`: on `create`, adds the prestart hook to the bundle's config.json when the
  container's environment asks for devices, then execs the real runc.
- `nvidia-container-runtime-hook prestart`: reads the container's state (stdin) and config, and, as
  nvidia-container-cli does, enters the container's mount namespace before pivot_root and bind-mounts the
  driver's files into its root: here a stand-in `nvidia-smi` and a stand-in device node `/dev/nvidia0` (a
  plain file).
- `nvidia-smi`: prints what the real one prints for `-L` when the device is there, and the real failure when
  it is not ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver...", exit 9). The
  CUDA images do not carry it (it comes from the host's driver through the hook): without a GPU it is not in
  the container at all, and the image's shell says `nvidia-smi: not found`. The hook puts it in the stand-in
  image's /standin/bin (its PATH; its /usr is the host's, read-only) where the real one uses /usr/bin.
"""

from __future__ import annotations

import sys
from pathlib import Path

GPU_LINE = "GPU 0: Tesla T4 (UUID: GPU-4f3c2b1a-9e8d-7c6b-5a49-382716059a0b)"
NO_DRIVER = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the "
             "latest NVIDIA driver is installed and running.")
SMI_TARGET = "standin/bin/nvidia-smi"  # under the container's root
DEVICE_TARGET = "dev/nvidia0"
HOOK = "nvidia-container-runtime-hook"
RUNTIME = "nvidia-container-runtime"

_NVIDIA_SMI = f"""#!/bin/busybox ash
# Stand-in nvidia-smi (tests/session/standin/gpu.py): the device is what the real one talks to.
if [ ! -e /{DEVICE_TARGET} ]; then
\techo "{NO_DRIVER}"
\texit 9
fi
if [ "$1" = "-L" ]; then
\techo "{GPU_LINE}"
\texit 0
fi
echo "stand-in nvidia-smi: only -L is played"
exit 2
"""

_COMMON = '''
import json
import os
import sys


def wants_gpu(spec):
    env = dict(entry.split("=", 1) for entry in spec.get("process", {{}}).get("env", []) if "=" in entry)
    return env.get("NVIDIA_VISIBLE_DEVICES", "") not in ("", "void", "none")
'''

_RUNTIME = '''#!{python}
"""Stand-in nvidia-container-runtime (tests/session/standin/gpu.py): adds the hook on `create`, then runc."""
''' + _COMMON + '''
args = sys.argv[1:]
if "create" in args and "--bundle" in args:
    path = os.path.join(args[args.index("--bundle") + 1], "config.json")
    with open(path) as handle:
        spec = json.load(handle)
    prestart = spec.setdefault("hooks", {{}}).setdefault("prestart", [])
    if wants_gpu(spec) and not any(hook.get("path") == {hook!r} for hook in prestart):
        prestart.append({{"path": {hook!r}, "args": ["{hook_name}", "prestart"]}})
        with open(path, "w") as handle:
            json.dump(spec, handle)
os.execv({runc!r}, [{runc!r}, *args])
'''

_HOOK = '''#!{python}
"""Stand-in nvidia-container-runtime-hook (tests/session/standin/gpu.py): mounts the 'driver' into the container."""
import subprocess
''' + _COMMON + '''
state = json.load(sys.stdin)
with open(os.path.join(state["bundle"], "config.json")) as handle:
    spec = json.load(handle)
if wants_gpu(spec):
    root = spec["root"]["path"]
    if not os.path.isabs(root):
        root = os.path.join(state["bundle"], root)
    for source, target in (({smi!r}, {smi_target!r}), ({device!r}, {device_target!r})):
        # Before pivot_root the container's namespace still sees the host's files and its own future root.
        point = os.path.join(root, target)
        subprocess.run(["nsenter", f"--mount=/proc/{{state['pid']}}/ns/mnt", "sh", "-c",
                        f"touch {{point}} && mount --bind -o ro {{source}} {{point}}"], check=True)
'''


def install(folder: Path, runc: str = "/usr/sbin/runc") -> Path:
    """Writes the runtime, its hook, nvidia-smi and the device stand-in into `folder`; returns the folder, which
    goes first on dockerd's PATH (for the hook) and names the runtime (`--add-runtime nvidia=<folder>/...`)."""
    folder.mkdir(parents=True, exist_ok=True)
    smi, device = folder / "driver-nvidia-smi", folder / "driver-nvidia0"
    smi.write_text(_NVIDIA_SMI)
    smi.chmod(0o755)
    device.write_text("")
    values = dict(python=sys.executable, smi=str(smi), device=str(device), runc=runc, smi_target=SMI_TARGET,
                  device_target=DEVICE_TARGET, hook=str(folder / HOOK), hook_name=HOOK)
    for name, text in ((RUNTIME, _RUNTIME), (HOOK, _HOOK)):
        (folder / name).write_text(text.format(**values))
        (folder / name).chmod(0o755)
    return folder
