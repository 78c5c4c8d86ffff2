"""The dashboard as a person uses it: a real headless browser (Debian's chromium, driven by Playwright; no browser
download, nothing from the network) against the dashboard serving a training rehearsal — the tests' dockerd, the
stand-in simulator image (whose workers run a stand-in web_video_server with a real MJPEG stream) and moto's S3.

One run, one dashboard and one browser for the module; the tests go in the order a person would: open the page,
read the charts and the cost card, watch a worker's camera (and see it follow the worker's restart), try a forged
POST, see a killed worker named with its cause, take the screenshots, evaluate a clone, stop the run, then download
its car package and export its best checkpoint. The screenshots
the README shows are written here (into docs/img/ with DR_WRITE_SCREENSHOTS=1).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import boto3
import docker
import pytest

from session.core.metadata import Machine
from session.core.text import iso
from session.dashboard.access import COOKIE
from session.dashboard.cost import CostSource
from session.dashboard.server import build_app
from session.run.state import RunStateStore, Status, record_start
from session.run.training import run_containers, start_training
from tests.session.dashboard.serving import free_port, serving
from tests.session.run.test_rehearsal_e2e import (  # noqa: F401 - fixtures
    READY_S,
    Rehearsal,
    bridge_s3,
    simapp_image,
)

CHROMIUM = "/usr/bin/chromium"  # Debian's (scripts/test installs it); Playwright's own download is never used
# The README's screenshots: written into docs/img/ when DR_WRITE_SCREENSHOTS=1 (a browser's pixels differ from run to
# run, so every test run would otherwise leave the checkout changed); into the test's own folder otherwise.
DOC_IMAGES = Path(__file__).resolve().parents[3] / "docs" / "img"
SEEN_S = 60_000  # ms: what a person would wait for the page to show something (the run makes progress meanwhile)
DESKTOP = {"width": 1280, "height": 1000}
# A hash of the picture worker 1's camera shows now (drawn on a canvas: same origin, so readable).
FINGERPRINT = ("() => { const i = document.querySelector('img[data-worker=\"1\"]');"
               " const c = document.createElement('canvas'); c.width = 480; c.height = 360;"
               " const g = c.getContext('2d'); g.drawImage(i, 0, 0);"
               " const d = g.getImageData(0, 0, 480, 360).data; let h = 0;"
               " for (let k = 0; k < d.length; k += 7) h = (h * 31 + d[k]) | 0; return h; }")
PHONE = {"width": 390, "height": 844}
BUDGET = 50.0
IDLE_LEFT = timedelta(minutes=25)


@pytest.fixture(scope="module")
def training(tmp_path_factory, bridge_s3: str, docker_engine: str, simapp_image: str) -> Iterator[Rehearsal]:
    """Two workers training, recorded in a run state of the test's own with a time limit, as `train` records it."""
    folder = tmp_path_factory.mktemp("dashboard-run")
    bucket = f"deepracer-dash-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=bridge_s3, region_name="us-east-1").create_bucket(Bucket=bucket)
    shutil.copytree(Path(__file__).resolve().parents[3] / "session" / "defaults", folder / "custom_files",
                    ignore=shutil.ignore_patterns("__pycache__"))
    rehearsal = Rehearsal(folder, bridge_s3, docker_engine, bucket)
    rehearsal.write(f"DR_WORLD_NAME=reInvent2019_track\nDR_LOCAL_S3_MODEL_PREFIX=dash-{uuid.uuid4().hex[:6]}\n"
                    "DR_TRAIN_MIN_EVAL_TRIALS=2\n", workers=2)
    host = rehearsal.host()
    start_training(host, say=lambda _: None, timeout_s=READY_S)
    record_start(RunStateStore(folder / "state.json"), host, rehearsal.run_env, folder / "system.env", max_minutes=120)
    try:
        yield rehearsal
    finally:
        rehearsal.clean_up()


@pytest.fixture(scope="module")
def dashboard(training: Rehearsal) -> Iterator[tuple[str, str]]:
    """The dashboard of that run on 127.0.0.1 (uvicorn in a thread, as `deepracer dashboard` serves it): yields its
    base URL and token."""
    host = training.host()
    token_file = training.folder / "dashboard-token"
    said: list[str] = []
    port = free_port()
    store = RunStateStore(training.folder / "state.json")
    # The rehearsal runs on DR_CLOUD=local, which has no price: the card is shown a spot g4dn.2xlarge (as IMDS would
    # name it) and a $50 budget (as the stack's cost settings would), over the run's real history.
    cost = CostSource(host.system, history=store.history, budget=lambda: BUDGET,
                      machine=lambda: Machine("aws", "g4dn.2xlarge", True), idle_left=lambda now: IDLE_LEFT)
    app = build_app(training.run_env, training.folder / "system.env", port=port, token_file=token_file,
                    engine=host.engine, storage=host.storage, store=store,
                    host_factory=lambda run_env, system_env: training.host(), refresh_s=0.5, progress_every_s=3.0,
                    cost=cost.facts, say=said.append)
    token = token_file.read_text().strip()
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert any(f"http://127.0.0.1:{port}/?token={token}" in line for line in said)  # said once, at its making
    with serving(app, port) as base:
        yield base, token


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def page(browser, dashboard):
    """One signed-in page for the module, its console errors (a CSP violation is one) collected."""
    base, token = dashboard
    context = browser.new_context(viewport=DESKTOP)
    opened = context.new_page()
    opened.console_errors = []
    opened.on("console", lambda message: message.type == "error" and opened.console_errors.append(message.text))
    opened.goto(f"{base}/?token={token}")
    yield opened
    context.close()


def api(page, base: str) -> dict:
    answer = page.request.get(f"{base}/api/state")
    assert answer.status == 200, answer.text()
    return answer.json()


# --- the tests, in a person's order ----------------------------------------------------------------------------------

def test_the_page_opens_with_the_token_and_is_refused_without_it(browser, dashboard, page):
    from playwright.sync_api import expect

    base, token = dashboard
    stranger = browser.new_context()
    try:
        refused = stranger.new_page()
        assert refused.goto(f"{base}/").status == 401
        expect(refused.locator("h1")).to_have_text("This dashboard needs its token")
        assert refused.goto(f"{base}/?token=not-{token}").status == 401
        assert refused.request.get(f"{base}/api/state").status == 401
        assert refused.request.get(f"{base}/static/dashboard.js").status == 401
        assert refused.request.get(f"{base}/video/1").status == 401
        assert stranger.cookies() == []
        # Another Host name (DNS rebinding) is refused before anything else.
        assert refused.request.get(f"{base}/", headers={"Host": f"evil.example:{base.rsplit(':', 1)[1]}"}).status == 400
    finally:
        stranger.close()

    # The token is swapped for an HttpOnly, SameSite=Strict cookie and leaves the address bar.
    assert page.url == f"{base}/"
    [cookie] = page.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == (COOKIE, True, "Strict")
    assert token not in cookie["value"]
    answer = page.request.get(f"{base}/")
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    state = api(page, base)
    expect(page.locator("#run")).to_contain_text(f"run {state['run']['id']} · {state['run']['model_prefix']}",
                                                 timeout=SEEN_S)
    expect(page.locator("#containers tbody tr")).to_have_count(len(state["containers"]), timeout=SEEN_S)
    expect(page.locator("#times")).to_contain_text("120 min")
    expect(page.locator("#storage")).to_contain_text("storage: reachable · ", timeout=SEEN_S)
    expect(page.locator("#storage")).to_contain_text(f"s3://{state['run']['bucket']}/{state['run']['model_prefix']}/")
    assert page.console_errors == []


def test_the_cost_card_shows_the_price_the_runs_spend_and_the_budget(page, dashboard):
    from playwright.sync_api import expect

    base, _ = dashboard
    card = page.locator("#costs")
    expect(card.locator("dd[data-cost='price']")).to_have_text("$0.316/h · g4dn.2xlarge spot", timeout=SEEN_S)
    expect(card.locator("dd[data-cost='budget']")).to_have_text("$50.00")
    expect(card.locator("dd[data-cost='idle']")).to_have_text("not while training")
    cost = api(page, base)["cost"]
    # The run's training time at $0.3158 an hour, as the API says it (a cent takes about two minutes to change).
    assert cost["run_usd"] == round(cost["run_training_s"] / 3600 * 0.3158, 2)
    expect(card.locator("dd[data-cost='run']")).to_contain_text(f"${cost['run_usd']:.2f} (")
    expect(card.locator("dd[data-cost='month']")).to_contain_text("% of the budget")
    expect(page.locator("#cost-counted")).to_contain_text("idle time, disks, public IP, storage and simulation nodes "
                                                          "are not counted")


def test_the_charts_show_the_runs_numbers(page, dashboard):
    from playwright.sync_api import expect

    base, _ = dashboard
    # Two iterations played (the first checkpoint's and the next): the first of them is complete.
    page.wait_for_function("() => { const c = window.dashboard.charts['chart-reward'];"
                           " return c && c.data[0].length >= 2 && c.data[1][0] !== null; }", timeout=SEEN_S)
    chart = page.evaluate("() => { const c = window.dashboard.charts['chart-reward'];"
                          " return {x: c.data[0], y: c.data[1]}; }")
    shown = page.evaluate("() => window.dashboard.latest().live.iterations")
    assert chart == {"x": [row["number"] for row in shown], "y": [row["mean_reward"] for row in shown]}
    # A complete iteration's numbers do not change: the API asked now agrees with the chart.
    now = {row["checkpoint"]: row for row in api(page, base)["live"]["iterations"]}
    first = shown[0]
    assert now[first["checkpoint"]]["mean_reward"] == pytest.approx(first["mean_reward"])
    assert first["episodes"] > 0 and first["mean_completion"] is not None
    completion = page.evaluate("() => window.dashboard.charts['chart-completion'].data[1]")
    assert completion[0] == pytest.approx(first["mean_completion"])
    # The table beside it says the same, as people read it.
    expect(page.locator("#iterations tbody tr").last).to_contain_text(f"{first['mean_reward']:.2f}")
    expect(page.locator("#workers tbody tr")).to_have_count(2)
    page.wait_for_function("() => window.dashboard.charts['chart-rate'].data[1].some(v => v > 0)", timeout=SEEN_S)


def test_a_workers_camera_plays_through_the_dashboard(page, dashboard):
    base, _ = dashboard
    page.wait_for_function("() => { const i = document.querySelector('img[data-worker=\"1\"]');"
                           " return i && i.complete && i.naturalWidth === 480 && i.naturalHeight === 360; }",
                           timeout=SEEN_S)
    # It plays: the picture the page shows changes (the stand-in draws a car going round and the frame number).
    page.evaluate(f"() => {{ window.firstFrame = ({FINGERPRINT})(); }}")
    page.wait_for_function(f"() => ({FINGERPRINT})() !== window.firstFrame", timeout=SEEN_S)
    # The proxy passes on the simulator's camera topics only, and bounded numbers.
    assert page.request.get(f"{base}/video/1?camera=../../etc").status == 404
    assert page.request.get(f"{base}/video/1?width=100000").status == 404
    assert page.request.get(f"{base}/video/9").status == 404
    unpublished = page.request.get(f"{base}/video/1?camera=sub")  # the simulator does not start the sub camera
    assert (unpublished.status, unpublished.text()) == (
        404, "worker 1 publishes no picture on /sub_camera/zed/rgb/image_rect_color (the sub camera needs "
             "DR_CAMERA_SUB_ENABLE)")


def test_the_camera_follows_a_restarted_worker(page, training: Rehearsal):
    host = training.host()
    [worker] = [c for c in run_containers(host.engine, host.system, host.run) if c.role == "worker" and c.worker == 1]
    docker.DockerClient(base_url=training.docker_host).containers.get(worker.id).restart(timeout=2)
    started = iso(host.engine.get(worker.id).started_at)
    # Once the page has seen the new start, the camera plays again: the old stream ended with the old process, so
    # a picture that changes is the new one.
    page.wait_for_function("() => window.dashboard.latest().containers.some(c => c.worker === 1 &&"
                           f" c.started_at === {started!r})", timeout=SEEN_S)
    page.wait_for_function("() => { const i = document.querySelector('img[data-worker=\"1\"]');"
                           " return i && i.complete && i.naturalWidth === 480; }", timeout=SEEN_S)
    page.evaluate(f"() => {{ window.restartedFrame = ({FINGERPRINT})(); }}")
    page.wait_for_function(f"() => ({FINGERPRINT})() !== window.restartedFrame", timeout=SEEN_S)


def test_a_post_without_the_csrf_token_is_refused(page, dashboard, training: Rehearsal):
    base, _ = dashboard
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    for path in ("/api/stop", "/api/car-package", "/api/increment", "/api/evaluate-clone", "/api/export"):
        for headers in ({}, {"X-CSRF-Token": "0" * len(csrf)},
                        {"X-CSRF-Token": csrf, "Origin": "http://evil.example"}):
            answer = page.request.post(f"{base}{path}", headers=headers)
            assert answer.status == 403, (path, headers, answer.text())
    assert page.request.get(f"{base}/api/stop").status == 405  # state changes only by POST
    host = training.host()
    assert sorted(c.role for c in run_containers(host.engine, host.system, host.run) if c.running) == \
        ["sagemaker", "trainer", "worker", "worker"]


def test_a_killed_worker_shows_up_with_its_cause(page, training: Rehearsal):
    from playwright.sync_api import expect

    host = training.host()
    [worker] = [c for c in run_containers(host.engine, host.system, host.run) if c.role == "worker" and c.worker == 2]
    docker.DockerClient(base_url=training.docker_host).containers.get(worker.id).kill()  # SIGKILL, as the OOM killer
    stall = page.locator("#stalls li[data-kind='exited']")
    expect(stall).to_contain_text("worker 2 exited with code 137", timeout=SEEN_S)
    expect(stall).to_contain_text("likely cause: killed (SIGKILL): out of memory")


def test_screenshots_at_desktop_and_phone_sizes(page, tmp_path):
    from playwright.sync_api import expect

    IMAGES = DOC_IMAGES if os.environ.get("DR_WRITE_SCREENSHOTS") == "1" else tmp_path
    # After the killed worker: the health list shows a stall with its cause, worker 1's camera plays on.
    IMAGES.mkdir(parents=True, exist_ok=True)
    expect(page.locator("#stalls li[data-kind='exited']")).to_be_visible()
    page.wait_for_function("() => { const i = document.querySelector('img[data-worker=\"1\"]');"
                           " return i && i.naturalWidth === 480; }", timeout=SEEN_S)
    page.wait_for_function("() => window.dashboard.charts['chart-reward'].data[0].length >= 2", timeout=SEEN_S)
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(IMAGES / "dashboard-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    # One column: nothing wider than the phone's screen.
    page.wait_for_function(f"() => document.documentElement.scrollWidth <= {PHONE['width']}", timeout=SEEN_S)
    page.screenshot(path=str(IMAGES / "dashboard-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)
    assert (IMAGES / "dashboard-desktop.png").stat().st_size > 10_000


def test_evaluate_a_clone_clones_and_starts_as_the_command_does_and_says_its_refusal_in_one_line(
        page, training: Rehearsal):
    """`deepracer evaluate --clone --detach`'s path: the model copied to <prefix>-E and one evaluation worker started.
    The training rehearsal's stand-in image has no evaluation launch file (tests/session/run/test_evaluation.py's
    has), so its worker exits at once: the page says the command's own refusal, and training goes on."""
    from playwright.sync_api import expect

    from session.run import evaluation

    host = training.host()
    prefix, errors = host.run.local_s3_model_prefix, len(page.console_errors)
    page.click("#evaluate-clone")
    expect(page.locator("#confirm")).to_contain_text("Evaluate a clone?")
    page.click("#confirm-yes")
    said = page.locator("#said")
    try:
        expect(said).to_contain_text("refused: evaluation did not start: ", timeout=3 * SEEN_S)
        [started] = evaluation.evaluation_containers(host)
        assert started.prefix == f"{prefix}-E" and not started.running
        assert said.text_content() == (f"refused: evaluation did not start: {started.name} exited with code 2; last "
                                       "line: run.sh: unknown launch file 'evaluation.launch.py'; stopped it")
        assert host.storage.prefix_has_objects(f"{prefix}-E/model/")  # the clone
        assert host.storage.exists(f"{prefix}-E/{host.run.local_s3_eval_params_file}")
        assert page.console_errors[errors:] == [
            "Failed to load resource: the server responded with a status of 409 (Conflict)"]
        assert {c.role for c in run_containers(host.engine, host.system, host.run) if c.running} == {
            "sagemaker", "trainer", "worker"}  # training went on
    finally:
        evaluation.stop_evaluation(host, say=lambda _: None)


def test_stop_asks_for_confirmation_and_stops_the_run(page, dashboard, training: Rehearsal):
    from playwright.sync_api import expect

    host = training.host()
    running = lambda: [c for c in run_containers(host.engine, host.system, host.run) if c.running]  # noqa: E731
    dialog = page.locator("#confirm")
    page.click("#stop")
    expect(dialog).to_be_visible()
    page.click("#confirm-no")  # changed their mind: nothing stops
    expect(dialog).to_be_hidden()
    assert {c.role for c in running()} == {"sagemaker", "trainer", "worker"}
    page.click("#stop")
    expect(dialog).to_contain_text(f"run {host.run.run_id} ({host.run.local_s3_model_prefix})")
    page.click("#confirm-yes")
    expect(page.locator("#said")).to_contain_text(f"stopped deepracer-{host.run.run_id}-trainer", timeout=SEEN_S)
    assert running() == []
    # `deepracer stop`'s path: logs beside the model, the run recorded as stopped by the user (not resumed).
    assert RunStateStore(training.folder / "state.json").read().status is Status.STOPPED
    assert any(info.key.endswith("-trainer.log")
               for info in host.storage.list_objects(f"{host.run.local_s3_model_prefix}/logs/"))
    # The page sees it too: nothing of the run runs, and there is nothing left to stop.
    expect(page.locator("#run")).to_contain_text("not running", timeout=SEEN_S)
    expect(page.locator("#stop")).to_be_disabled()


def test_the_car_package_of_the_best_checkpoint_is_asked_for_then_downloaded(page, training: Rehearsal):
    import io
    import tarfile

    from playwright.sync_api import expect

    host = training.host()
    prefix = host.run.local_s3_model_prefix
    page.click("#car-package")
    expect(page.locator("#confirm")).to_contain_text("Car package of the best checkpoint?")
    with page.expect_download(timeout=SEEN_S) as downloading:
        page.click("#confirm-yes")
    download = downloading.value
    assert download.suggested_filename == f"{prefix}-best.tar.gz"
    best = host.storage.get_json(f"{prefix}/model/deepracer_checkpoints.json")["best_checkpoint"]["name"]
    number = int(best.split("_", 1)[0])
    with tarfile.open(fileobj=io.BytesIO(Path(download.path()).read_bytes()), mode="r:gz") as tar:
        files = {member.name: tar.extractfile(member).read() for member in tar.getmembers() if member.isfile()}
    # The run is stopped: its best checkpoint stays put, and the package holds that one's frozen graph.
    assert set(files) == {"model_metadata.json", "agent/model.pb"}
    assert files["agent/model.pb"] == host.storage.get_bytes(f"{prefix}/model/model_{number}.pb")
    assert json.loads(files["model_metadata.json"]) == host.storage.get_json(f"{prefix}/model/model_metadata.json")


def test_the_export_asks_then_exports_the_best_checkpoint_and_a_second_one_is_refused_in_one_line(
        page, dashboard, training: Rehearsal):
    from playwright.sync_api import expect

    host = training.host()
    prefix, bucket, errors = host.run.local_s3_model_prefix, host.storage.bucket, len(page.console_errors)
    dialog = page.locator("#confirm")
    page.click("#export")
    expect(dialog).to_contain_text("Export the best checkpoint?")
    expect(dialog).to_contain_text(f"s3://{bucket}/{prefix}-export")
    page.click("#confirm-no")  # changed their mind: nothing is written
    expect(dialog).to_be_hidden()
    assert list(host.storage.list_objects(f"{prefix}-export/")) == []
    page.click("#export")
    page.click("#confirm-yes")
    best = host.storage.get_json(f"{prefix}/model/deepracer_checkpoints.json")["best_checkpoint"]["name"]
    said = page.locator("#said")
    expect(said).to_contain_text(f"exported {best} of s3://{bucket}/{prefix}/ to s3://{bucket}/{prefix}-export/",
                                 timeout=SEEN_S)
    # `deepracer models export --checkpoint best`'s package: that checkpoint as both last and best.
    assert host.storage.get_text(f"{prefix}-export/model/.coach_checkpoint") == best
    # Again: the target holds files now, and the page says the command's own refusal, one line.
    page.click("#export")
    page.click("#confirm-yes")
    expect(said).to_contain_text(f"refused: s3://{bucket}/{prefix}-export/ already holds ", timeout=SEEN_S)
    expect(said).to_contain_text("refusing to overwrite: choose an empty target or pass --overwrite")
    assert "\n" not in said.text_content()
    # Nothing runs now: the card counts down to the idle stop.
    expect(page.locator("#costs dd[data-cost='idle']")).to_have_text("in 25 min 0 s if nobody trains or types")
    # The browser logs the refused POST's answer; nothing else went wrong (a CSP violation would be here too).
    assert page.console_errors[errors:] == [
        "Failed to load resource: the server responded with a status of 409 (Conflict)"]
