"""The dashboard's token file and what is derived from it (session.dashboard.access)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from session.dashboard.access import AccessError, Keys, load_or_create


def test_the_token_is_made_once_readable_by_its_owner_only_and_kept(tmp_path: Path):
    path = tmp_path / "run" / "dashboard-token"
    keys, made = load_or_create(path)
    assert made and path.stat().st_mode & 0o777 == 0o600 and len(keys.token) >= 40
    again, made_again = load_or_create(path)
    assert (again, made_again) == (keys, False)


def test_two_dashboards_starting_at_once_share_one_token(tmp_path: Path):
    path = tmp_path / "dashboard-token"
    found: list = []
    threads = [threading.Thread(target=lambda: found.append(load_or_create(path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8  # none failed (a half-written token read by another would raise)
    assert len({keys for keys, _ in found}) == 1 and sum(made for _, made in found) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["dashboard-token"]  # no drafts left behind


def test_a_dashboard_starting_while_another_writes_its_token_sees_all_of_it_or_none(tmp_path: Path,
                                                                                    monkeypatch: pytest.MonkeyPatch):
    # The second start happens at the worst moment: while the first one writes its token.
    path = tmp_path / "dashboard-token"
    real, seen = os.fdopen, []

    def fdopen(*args, **kwargs):
        monkeypatch.setattr(os, "fdopen", real)
        seen.append(load_or_create(path))
        return real(*args, **kwargs)

    monkeypatch.setattr(os, "fdopen", fdopen)
    keys, made = load_or_create(path)
    assert seen == [(keys, True)] and not made  # the one that finished first made it; the other took its token


def test_a_token_others_can_read_is_refused_with_the_fix(tmp_path: Path):
    path = tmp_path / "dashboard-token"
    load_or_create(path)
    os.chmod(path, 0o644)
    with pytest.raises(AccessError, match=r"readable by others \(mode 644\): `chmod 600 "):
        load_or_create(path)


def test_a_folder_it_may_not_write_is_one_line_naming_the_way_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def refused(*args, **kwargs):  # the tests run as root, whom no folder's mode stops
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refused)
    with pytest.raises(AccessError, match=r"^cannot write the dashboard's token to .*: Permission denied; run it as the "
                                          r"user who trains .*DR_DASHBOARD_TOKEN_FILE$"):
        load_or_create(tmp_path / "dashboard-token")


def test_cookie_and_csrf_values_are_neither_the_token_nor_each_other_and_only_they_match():
    keys, other = Keys("a" * 43), Keys("b" * 43)
    assert len({keys.token, keys.session, keys.csrf}) == 3
    assert keys.session != other.session and keys.csrf != other.csrf
    assert keys.session_matches(keys.session) and not keys.session_matches(keys.csrf)
    assert keys.csrf_matches(keys.csrf) and not keys.csrf_matches(other.csrf) and not keys.csrf_matches(None)
    assert keys.token_matches(keys.token) and not keys.token_matches(keys.session) and not keys.token_matches("")


def test_the_web_framework_loads_for_the_dashboard_only():
    # `deepracer --help` and `status` import the CLI's modules; Starlette and uvicorn must not come with them.
    code = ("import sys; from session.cli import commands, main; "
            "print(','.join(n for n in ('starlette', 'uvicorn', 'session.dashboard.app') if n in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[3])
    assert done.stdout.strip() == ""


def test_the_unit_serves_the_users_run_on_the_default_port_of_127_0_0_1_only():
    import configparser

    from session.cli.main import _parser
    from session.core.defaults import DASHBOARD_PORT
    from session.core.paths import UNITS_DIR

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(UNITS_DIR / "deepracer-dashboard.service")
    assert unit["Service"]["ExecStart"] == ("/usr/sbin/runuser -u ${DR_HOST_USER} -- /opt/deepracer/venv/bin/deepracer "
                                            f"dashboard --port {DASHBOARD_PORT}")
    assert _parser().parse_args(["dashboard"]).port == DASHBOARD_PORT
    from session.dashboard.server import HOST

    assert HOST == "127.0.0.1"
