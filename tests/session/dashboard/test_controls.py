"""The dashboard's controls without a browser or a dockerd (fast tier): `build_app` as `deepracer dashboard` builds
it, over real run.env and system.env files and a real S3 API (moto's server), served by uvicorn on 127.0.0.1 and
asked with urllib as tests/session/dashboard/test_app.py does. The engine is the real client with no dockerd behind
it (the feed says so; the controls tested here need none). The browser test drives them against a training
rehearsal."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest

from session.core.config import load_config
from session.core.pricing import hourly_price
from session.dashboard.access import COOKIE, Keys
from session.dashboard.api import CostFacts
from session.dashboard.app import create_app
from session.dashboard.feed import LiveFeed
from session.dashboard.server import build_app
from session.engine.containers import Engine
from session.run.increment import IncrementError
from session.run.state import Event, RunStateError, RunStateStore
from session.storage.s3 import Storage
from tests.session.dashboard.serving import serving

RUN = "# the run\nDR_RUN_ID=4\nDR_LOCAL_S3_MODEL_PREFIX=ctl-1\nDR_WORLD_NAME=reInvent2019_track\n"




def call(base: str, keys: Keys, path: str, *, method: str = "POST", csrf: bool = True) -> tuple[int, Any]:
    """(status, the JSON answer, or its text when it is not JSON)."""
    headers = {"Cookie": f"{COOKIE}={keys.session}"}
    if csrf:
        headers["X-CSRF-Token"] = keys.csrf
    request = urllib.request.Request(base + path, method=method, headers=headers,
                                     data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, _body(answer.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, _body(error.read())


def _body(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode()


@pytest.fixture()
def dashboard(tmp_path: Path, s3_server: str) -> Iterator[tuple[str, Keys, Path, Storage]]:
    """A stopped run of an hour, ctl-1, on an on-demand g4dn.2xlarge with a $100 budget."""
    bucket = f"deepracer-ctl-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    (tmp_path / "system.env").write_text(f"DR_CLOUD=aws\nDR_LOCAL_S3_BUCKET={bucket}\nDR_SIMAPP_VERSION=6.0.4-gpu\n")
    (tmp_path / "run.env").write_text(RUN)
    storage = Storage(bucket, endpoint_url=s3_server)
    store = RunStateStore(tmp_path / "state.json")
    now = datetime.now(timezone.utc)
    store.start(run_id=4, prefix="ctl-1", run_env=str(tmp_path / "run.env"), system_env=str(tmp_path / "system.env"),
                started=now - timedelta(hours=1), running=True)
    store.apply(Event.STOP, stopped=now)
    facts = CostFacts(price=hourly_price("aws", "g4dn.2xlarge", spot=False), machine="g4dn.2xlarge", budget_usd=100.0,
                      idle_stop_left=timedelta(minutes=25))
    app = build_app(tmp_path / "run.env", tmp_path / "system.env", token_file=tmp_path / "token",
                    engine=Engine(base_url=f"unix://{tmp_path}/no-dockerd.sock"), storage=storage, store=store,
                    cost=lambda at: facts, say=lambda line: None)
    keys = Keys((tmp_path / "token").read_text().strip())
    with serving(app) as base:
        yield base, keys, tmp_path, storage


def test_every_control_needs_the_csrf_token(dashboard):
    base, keys, folder, _ = dashboard
    for path in ("/api/increment", "/api/evaluate-clone", "/api/export"):
        assert call(base, keys, path, csrf=False) == (403, {"error": "missing or wrong CSRF token"}), path
        assert call(base, keys, path, method="GET")[0] == 405, path  # state changes only by POST
    assert (folder / "run.env").read_text() == RUN


def test_an_increment_the_command_would_refuse_is_its_one_line(dashboard):
    base, keys, folder, storage = dashboard
    status, body = call(base, keys, "/api/increment")
    assert (status, body) == (409, {"error": "DR_LOCAL_S3_MODEL_PREFIX: expected a trained model at "
                                             f"{storage.url('ctl-1/model/')}, got no checkpoint there; train first"})
    assert (folder / "run.env").read_text() == RUN


def test_an_increment_rewrites_run_env_as_the_command_does(dashboard):
    base, keys, folder, storage = dashboard
    storage.put_text("ctl-1/model/3_Step-900.ckpt.index", "x")
    status, body = call(base, keys, "/api/increment")
    run_env = folder / "run.env"
    assert (status, body) == (200, {"lines": [
        f"{run_env}: DR_LOCAL_S3_MODEL_PREFIX=ctl-2, pretrained from ctl-1 (last checkpoint); backup {run_env}.bak",
        "`deepracer train` starts ctl-2; restart the dashboard to follow it"]})
    assert (folder / "run.env.bak").read_text() == RUN
    run = load_config(run_env, folder / "system.env", environ={}).run
    assert (run.local_s3_model_prefix, run.local_s3_pretrained_prefix, run.local_s3_pretrained_checkpoint) == (
        "ctl-2", "ctl-1", "last")


def test_an_export_without_a_model_is_the_commands_one_line(dashboard):
    base, keys, _, storage = dashboard
    status, body = call(base, keys, "/api/export")
    assert (status, body) == (409, {"error": f"no model at {storage.url('ctl-1/')}: it holds nothing; "
                                             "`deepracer models list` shows the models in the bucket"})


def test_the_cost_card_is_in_the_state(dashboard):
    base, keys, _, _ = dashboard
    status, state = call(base, keys, "/api/state", method="GET")
    cost = state["cost"]
    assert status == 200 and state["running"] is False
    assert (cost["machine"], cost["spot"], cost["hourly_usd"], cost["budget_usd"]) == ("g4dn.2xlarge", False, 0.752,
                                                                                       100.0)
    assert cost["run_training_s"] == pytest.approx(3600, abs=1) and cost["run_usd"] == 0.75
    assert cost["idle_stop_in_s"] == 1500.0


def test_one_control_at_a_time_and_a_refusal_that_is_no_deepracer_error_is_no_page(tmp_path: Path):
    """A second control while one works is refused (stop is not: it has its own lock); a control left out is 404; a
    refusal of stop's is one line too."""
    (tmp_path / "system.env").write_text("DR_CLOUD=local\nDR_SIMAPP_VERSION=6.0.4-gpu\nDR_LOCAL_S3_BUCKET=models\n")
    (tmp_path / "run.env").write_text("DR_RUN_ID=7\nDR_LOCAL_S3_MODEL_PREFIX=busy-1\n")
    loaded = load_config(tmp_path / "run.env", tmp_path / "system.env", environ={})
    started, release = threading.Event(), threading.Event()

    def slow_export() -> list[str]:
        started.set()
        release.wait(30)
        return ["exported"]

    def refused() -> list[str]:
        raise IncrementError("--prefix: expected an empty prefix, got 'x' which already holds objects")

    def stop() -> list[str]:
        raise RunStateError("/var/lib/deepracer/run/state.json: cannot record the run state (Permission denied); "
                            "the folder must exist and be writable by you")

    keys = Keys("k" * 43)
    app = create_app(keys=keys, feed=LiveFeed(lambda: [], lambda c: iter(()), probe=None, idle_every_s=0.2),
                     system=loaded.system, run=loaded.run, stop=stop,
                     car_package=lambda: ("p.tar.gz", b"gz"), address=lambda c: None, read_run_state=lambda: None,
                     increment=refused, export=slow_export)
    with serving(app) as base:
        answers: list = []
        exporting = threading.Thread(target=lambda: answers.append(call(base, keys, "/api/export")))
        exporting.start()
        assert started.wait(10)
        assert call(base, keys, "/api/increment") == (409, {"error": "an export is already under way"})
        assert call(base, keys, "/api/stop") == (409, {"error": (  # not held up by the export; refused in one line
            "/var/lib/deepracer/run/state.json: cannot record the run state (Permission denied); the folder must "
            "exist and be writable by you")})
        release.set()
        exporting.join(10)
        assert answers == [(200, {"lines": ["exported"]})]
        assert call(base, keys, "/api/increment") == (
            409, {"error": "--prefix: expected an empty prefix, got 'x' which already holds objects"})
        assert call(base, keys, "/api/evaluate-clone") == (
            404, {"error": "an evaluation's start is not offered by this dashboard"})
