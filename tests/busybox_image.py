"""Images for a test's own Docker Engine, with no registry: a static busybox (sh and a few applets), `bash`
played by busybox ash (which understands `source`), plus the files a test names. The stand-ins of the simulator
are built with this; what each plays is said where it is used."""

from __future__ import annotations

import io
import shutil
import tarfile
from typing import Mapping, Sequence

ASH = "#!/bin/busybox ash\nexec /bin/busybox ash \"$@\"\n"
APPLETS = ("sh", "echo", "sleep", "cat", "ls", "env", "true")
SIMAPP_CHANGES = ('ENTRYPOINT ["/bin/bash", "-c"]', "WORKDIR /opt/ml/code", "ENV PATH=/usr/bin:/bin")


def busybox_image(docker_host: str, repository: str, tag: str, files: Mapping[str, str] = {},
                  changes: Sequence[str] = (), directories: Sequence[str] = ("tmp", "mnt", "var/run")) -> str:
    """Imports the image and returns `repository:tag`. `files`: path in the image -> text (mode 0755, except
    names ending in .json/.yaml/activate, which get 0644)."""
    import docker

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(shutil.which("busybox") or "/bin/busybox", arcname="bin/busybox")
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        for path, text in {"bin/bash": ASH, **files}.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644 if path.endswith((".json", ".yaml", "activate")) else 0o755
            tar.addfile(info, io.BytesIO(data))
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777
            tar.addfile(info)
    docker.DockerClient(base_url=docker_host).api.import_image_from_data(
        buffer.getvalue(), repository=repository, tag=tag, changes=list(changes))
    return f"{repository}:{tag}"
