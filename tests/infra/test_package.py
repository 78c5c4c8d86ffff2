"""The session archive: exact contents, byte-identical rebuilds, and a real `pip install` of it."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from infra.package import ARCHIVE_NAME, build_session_archive

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo(tmp_path) -> Path:
    """A checkout-shaped tree: the real pyproject and README, a small session/ and things that must stay out."""
    root = tmp_path / "repo"
    (root / "session" / "defaults").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, root / name)
    (root / "session" / "__init__.py").write_text('__version__ = "0.1.0"\n')
    (root / "session" / "cli.py").write_text("def main(argv=None):\n    return 0\n")
    (root / "session" / "defaults" / "run.env").write_text("DR_WORLD_NAME=reInvent2019_track\n")
    script = root / "session" / "helper.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o775)
    (root / "session" / "private.txt").write_text("x\n")
    (root / "session" / "private.txt").chmod(0o600)
    # Left out: byte code, the Pulumi program, tests, build output.
    (root / "session" / "__pycache__").mkdir()
    (root / "session" / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"\x00pyc")
    (root / "session" / "stale.pyc").write_bytes(b"\x00pyc")
    (root / "infra").mkdir()
    (root / "infra" / "__init__.py").write_text("")
    (root / "infra" / "__main__.py").write_text("import pulumi\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_x.py").write_text("")
    (root / "build").mkdir()
    (root / "build" / "old.tar.gz").write_bytes(b"old")
    return root


def members(archive: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(archive, "r:gz") as tar:
        return tar.getmembers()


def pip_install(archive: Path, target: Path) -> Path:
    """`pip install` with the venv's own pip and setuptools, offline; returns the installed dist-info."""
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INDEX="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-cache-dir",
         "--target", str(target), str(archive)],
        capture_output=True, text=True, env=env, timeout=300)
    # An "invalid command 'bdist_wheel'" here means the venv's setuptools is older than 70.1 (and no `wheel`).
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dist_infos = list(target.glob("deepracer_cloud-*.dist-info"))
    assert len(dist_infos) == 1, sorted(p.name for p in target.iterdir())
    return dist_infos[0]


# -- contents -----------------------------------------------------------------------------------------------

def test_archive_holds_pyproject_readme_and_the_session_tree_only(repo, tmp_path):
    archive, _ = build_session_archive(repo, tmp_path / "out")
    assert [m.name for m in members(archive)] == [
        "README.md",
        "pyproject.toml",
        "session",
        "session/__init__.py",
        "session/cli.py",
        "session/defaults",
        "session/defaults/run.env",
        "session/helper.sh",
        "session/private.txt",
    ]
    with tarfile.open(archive, "r:gz") as tar:
        assert tar.extractfile("pyproject.toml").read() == (REPO_ROOT / "pyproject.toml").read_bytes()
        assert tar.extractfile("session/defaults/run.env").read() == b"DR_WORLD_NAME=reInvent2019_track\n"


def test_metadata_is_normalised(repo, tmp_path):
    archive, _ = build_session_archive(repo, tmp_path / "out")
    modes = {}
    for m in members(archive):
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", ""), m.name
        assert m.isdir() or m.isfile(), m.name
        modes[m.name] = m.mode
    assert modes["session"] == modes["session/defaults"] == 0o755
    assert modes["session/helper.sh"] == 0o755  # was 0o775
    assert modes["session/private.txt"] == 0o644  # was 0o600
    assert modes["session/__init__.py"] == modes["pyproject.toml"] == 0o644
    header = archive.read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] & 0x08 == 0, "gzip header names a file"
    assert header[4:8] == b"\0\0\0\0", "gzip header has a time"


def test_returns_the_path_and_sha256_and_leaves_nothing_else(repo, tmp_path):
    out = tmp_path / "out" / "nested"
    archive, digest = build_session_archive(repo, out)
    assert archive == out / ARCHIVE_NAME
    assert digest == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert sorted(p.name for p in out.iterdir()) == [ARCHIVE_NAME]


def test_a_missing_readme_is_named(repo, tmp_path):
    (repo / "README.md").unlink()
    with pytest.raises(FileNotFoundError, match="README.md"):
        build_session_archive(repo, tmp_path / "out")


# -- determinism --------------------------------------------------------------------------------------------

def test_same_inputs_give_identical_bytes(repo, tmp_path):
    first, first_digest = build_session_archive(repo, tmp_path / "a")
    first_bytes = first.read_bytes()
    # Everything but content and the executable bit changes: times, permissions, a rebuild over the old file.
    for path in repo.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    (repo / "session" / "private.txt").chmod(0o664)
    (repo / "session" / "helper.sh").chmod(0o700)
    second, second_digest = build_session_archive(repo, tmp_path / "a")
    assert second.read_bytes() == first_bytes
    assert second_digest == first_digest


def test_a_content_change_changes_the_digest(repo, tmp_path):
    _, before = build_session_archive(repo, tmp_path / "out")
    (repo / "session" / "defaults" / "run.env").write_text("DR_WORLD_NAME=2022_april_pro\n")
    _, after = build_session_archive(repo, tmp_path / "out")
    assert after != before


def test_the_real_repository_builds_twice_identically(tmp_path):
    a, digest_a = build_session_archive(REPO_ROOT, tmp_path / "a")
    b, digest_b = build_session_archive(REPO_ROOT, tmp_path / "b")
    assert a.read_bytes() == b.read_bytes() and digest_a == digest_b
    names = [m.name for m in members(a)]
    assert names[:3] == ["README.md", "pyproject.toml", "session"]
    assert "session/__init__.py" in names
    assert all(n.startswith("session/") for n in names[3:]), names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


# -- pip install ----------------------------------------------------------------------------------------------

def test_pip_installs_the_real_repository_archive_as_session_only(tmp_path):
    archive, _ = build_session_archive(REPO_ROOT, tmp_path / "out")
    target = tmp_path / "site"
    dist_info = pip_install(archive, target)
    assert (target / "session" / "__init__.py").is_file()
    assert not (target / "infra").exists()
    assert (dist_info / "top_level.txt").read_text().split() == ["session"]
    entry_points = (dist_info / "entry_points.txt").read_text()
    assert "[console_scripts]" in entry_points
    assert "deepracer = session.cli.main:main" in entry_points


def test_pip_install_brings_the_defaults_and_leaves_out_infra(repo, tmp_path):
    archive, _ = build_session_archive(repo, tmp_path / "out")
    target = tmp_path / "site"
    pip_install(archive, target)
    assert (target / "session" / "defaults" / "run.env").read_text() == "DR_WORLD_NAME=reInvent2019_track\n"
    assert (target / "session" / "cli.py").is_file()
    assert not (target / "infra").exists()
    assert not (target / "tests").exists()


def test_each_cloud_has_an_extra_with_only_its_own_provider():
    """`pip install -e '.[aws]'` must not bring pulumi-azure-native (~350 MB), nor `.[azure]` pulumi-aws."""
    import tomllib

    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def names(extra: str) -> set[str]:
        return {requirement.split(">")[0].split("<")[0].split("[")[0].strip() for requirement in extras[extra]}

    assert {"pulumi", "pulumi-aws", "pulumi-command"} <= names("aws") and "pulumi-azure-native" not in names("aws")
    assert {"pulumi", "pulumi-azure-native", "pulumi-command"} <= names("azure") and "pulumi-aws" not in names("azure")
    assert extras["infra"] == ["deepracer-cloud[aws,azure]"]
    # An Azure host installs the blob SDK only, never a Pulumi provider (bootstrap.sh's session-package step).
    assert not any(name.startswith("pulumi") for name in names("azure-host"))
    assert "src[azure-host]" in (REPO_ROOT / "cloudinit" / "scripts" / "bootstrap.sh").read_text()
