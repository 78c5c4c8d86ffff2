"""The session package the training host installs: a deterministic source archive of session/ only.

The archive holds the root pyproject.toml, its readme and the session/ tree; setuptools' packages.find then
finds only `session*`, so `pip install session.tar.gz` on the host builds a distribution without infra/ (and
without Pulumi). Deterministic bytes (sorted entries, fixed times, owners and modes) mean that an unchanged
checkout uploads an unchanged object, and `pulumi up` shows no diff for it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

ARCHIVE_NAME = "session.tar.gz"
# Files at the repository root that the build of the package needs (pyproject names README.md as readme).
ROOT_FILES = ("pyproject.toml", "README.md")
PACKAGE_DIR = "session"
_SKIPPED_DIRS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


def _members(repo_root: Path) -> list[str]:
    """Relative POSIX paths of the archive's directories and files, sorted."""
    names: list[str] = []
    for name in ROOT_FILES:
        if not (repo_root / name).is_file():
            raise FileNotFoundError(f"{repo_root / name} is missing; the session package cannot be built without it")
        names.append(name)
    package = repo_root / PACKAGE_DIR
    if not (package / "__init__.py").is_file():
        raise FileNotFoundError(f"{package / '__init__.py'} is missing; is {repo_root} the repository root?")
    for directory, subdirs, files in os.walk(package):
        subdirs[:] = [d for d in subdirs if d not in _SKIPPED_DIRS]
        here = Path(directory)
        names.append((here.relative_to(repo_root)).as_posix())
        names.extend((here / f).relative_to(repo_root).as_posix() for f in files
                     if not f.endswith(_SKIPPED_SUFFIXES) and (here / f).is_file())
    return sorted(names)


def _tarinfo(name: str, *, size: int = 0, directory: bool = False, executable: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory or executable else 0o644
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def archive_bytes(repo_root: Path) -> bytes:
    """The archive's bytes: a function of the files' names, contents and executable bits only."""
    raw = io.BytesIO()
    # filename="" keeps the output name out of the gzip header; mtime=0 keeps the clock out of it.
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in _members(repo_root):
                path = repo_root / name
                if path.is_dir():
                    tar.addfile(_tarinfo(name, directory=True))
                    continue
                data = path.read_bytes()
                info = _tarinfo(name, size=len(data), executable=bool(path.stat().st_mode & 0o111))
                tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def build_session_archive(repo_root: Path, out_dir: Path) -> tuple[Path, str]:
    """Writes out_dir/session.tar.gz from repo_root; returns its path and sha256 hex digest."""
    data = archive_bytes(Path(repo_root))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / ARCHIVE_NAME
    # Written beside the target and renamed: a reader (the upload) never sees half an archive.
    partial = out_dir / f".{ARCHIVE_NAME}.{os.getpid()}.partial"
    partial.write_bytes(data)
    os.replace(partial, target)
    return target, hashlib.sha256(data).hexdigest()
