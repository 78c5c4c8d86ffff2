"""The app's guard without a browser or a run (fast tier): uvicorn serving `create_app` on 127.0.0.1 with a feed that
lists no containers, asked with urllib. The browser tests check the same against a training rehearsal."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator, Optional

import pytest

from session.core.config import load_config
from session.dashboard.access import COOKIE, Keys
from session.dashboard.app import CSP, create_app
from session.dashboard.feed import LiveFeed
from tests.session.dashboard.serving import serving

KEYS = Keys("t" * 43)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # the 303 itself is what is checked
        return None


OPENER = urllib.request.build_opener(_NoRedirect)


def ask(url: str, *, method: str = "GET", headers: Optional[dict] = None, cookie: bool = True):
    sent = dict(headers or {})
    if cookie:
        sent["Cookie"] = f"{COOKIE}={KEYS.session}"
    request = urllib.request.Request(url, method=method, headers=sent, data=b"" if method == "POST" else None)
    try:
        with OPENER.open(request, timeout=10) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("app")
    (folder / "system.env").write_text("DR_CLOUD=local\nDR_SIMAPP_VERSION=6.0.4-gpu\nDR_LOCAL_S3_BUCKET=models\n")
    (folder / "run.env").write_text("DR_RUN_ID=7\nDR_LOCAL_S3_MODEL_PREFIX=guarded-1\n")
    loaded = load_config(folder / "run.env", folder / "system.env", environ={})
    stops: list[str] = []
    feed = LiveFeed(lambda: [], lambda container: iter(()), probe=None, idle_every_s=0.2)
    app = create_app(keys=KEYS, feed=feed, system=loaded.system, run=loaded.run,
                     stop=lambda: stops.append("stop") or ["stopped"], car_package=lambda: ("p.tar.gz", b"gz"),
                     address=lambda container: None, read_run_state=lambda: None)
    with serving(app) as base:
        yield base


def test_without_the_cookie_everything_is_refused_with_the_security_headers(base: str):
    for path in ("/", "/api/state", "/static/dashboard.js", "/video/1", "/?token=wrong"):
        status, headers, _ = ask(base + path, cookie=False)
        assert status == 401, path
        assert headers["Content-Security-Policy"] == CSP and headers["X-Content-Type-Options"] == "nosniff"
    status, _, _ = ask(base + "/api/state", headers={"Cookie": f"{COOKIE}={KEYS.csrf}"}, cookie=False)
    assert status == 401


def test_the_token_becomes_an_httponly_strict_cookie_and_leaves_the_address(base: str):
    status, headers, _ = ask(f"{base}/?token={KEYS.token}", cookie=False)
    assert (status, headers["Location"]) == (303, "/")
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}={KEYS.session};") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    status, headers, body = ask(base + "/")
    assert status == 200 and f'content="{KEYS.csrf}"' in body.decode() and headers["Cache-Control"] == "no-store"


def test_only_the_loopback_names_are_served(base: str):
    port = base.rsplit(":", 1)[1]
    assert ask(base + "/api/state", headers={"Host": f"attacker.example:{port}"})[0] == 400
    assert ask(base + "/api/state", headers={"Host": f"localhost:{port}"})[0] == 200


def test_posts_need_the_csrf_token_and_this_origin(base: str):
    for headers in ({}, {"X-CSRF-Token": KEYS.session}, {"X-CSRF-Token": KEYS.csrf, "Origin": "http://evil.example"}):
        status, _, body = ask(base + "/api/stop", method="POST", headers=headers)
        assert status == 403 and "error" in json.loads(body), headers
    status, _, body = ask(base + "/api/stop", method="POST", headers={"X-CSRF-Token": KEYS.csrf, "Origin": base})
    assert (status, json.loads(body)) == (200, {"lines": ["stopped"]})
    status, headers, body = ask(base + "/api/car-package", method="POST", headers={"X-CSRF-Token": KEYS.csrf})
    assert (status, body, headers["Content-Disposition"]) == (200, b"gz", 'attachment; filename="p.tar.gz"')


def test_the_state_is_the_runs_and_says_nothing_runs(base: str):
    status, _, body = ask(base + "/api/state")
    state = json.loads(body)
    assert status == 200 and state["run"]["id"] == 7 and state["running"] is False and state["containers"] == []
    assert ask(base + "/video/1")[0] == 404  # no such worker running


def test_the_dashboard_module_is_where_the_cli_looks(tmp_path: Path):
    from session.cli.main import _parser

    args = _parser().parse_args(["dashboard", "--port", "8300", "--refresh", "2"])
    assert (args.command, args.port, args.refresh) == ("dashboard", 8300, 2.0)
