"""What `deepracer dashboard` costs the host while a run trains: its memory (RSS) and the CPU of one refresh.

    .venv/bin/python benchmarks/dashboard_cost.py [--window 20] [--requests 200]     (as root, like the tests)

Starts the training rehearsal the dashboard's browser tests use (the tests' own dockerd, the stand-in simulator
image with two workers, moto's S3; tests/session/dashboard/test_dashboard_browser.py's fixtures, through pytest),
then `python -m session dashboard` as a process of its own, as its unit runs it, and measures from /proc:

- memory: its resident set (VmRSS) once it follows the run, and its peak (VmHWM);
- the feed: CPU seconds per second with nobody looking (following the trainer's and workers' logs, listing the
  containers every 5 s, reading progress from storage every 30 s, probing GPU and disks), over --window seconds;
- one refresh: CPU per `GET /api/state`, from --requests back to back, less the feed's share of that time;
- the page's polling: CPU per second while one page polls every 2 s, over --window seconds.

The stand-in workers step ~8x faster than the real simulator's 15 steps/s, so the feed's log following costs more
here than on a real host: an upper bound. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.session.dashboard.test_dashboard_browser import (  # noqa: E402, F401 - fixtures
    Rehearsal,
    bridge_s3,
    simapp_image,
    training,
)

OPTIONS = {"window": 20.0, "requests": 200}
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def memory_kib(pid: int) -> dict:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {name: int(status[name].split()[0]) for name in ("VmRSS", "VmHWM")}


def test_dashboard_cost(training: Rehearsal, tmp_path: Path):  # noqa: F811 - the fixture
    from session.dashboard.access import COOKIE, Keys

    port = 8200 + os.getpid() % 500
    token_file = tmp_path / "dashboard-token"
    env = {**os.environ, "DOCKER_HOST": training.docker_host, "DR_DASHBOARD_TOKEN_FILE": str(token_file),
           "DR_RUN_STATE": str(training.folder / "state.json"), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "session", "--run-env", str(training.run_env), "--system-env",
                                str(training.folder / "system.env"), "dashboard", "--port", str(port)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        state: dict = {}
        while not (state.get("live") and any(w["steps"] for w in state["live"]["workers"])):
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
            time.sleep(0.5)  # the dashboard's own start and first reading; it offers nothing to wait on
            if token_file.exists():
                cookie = f"{COOKIE}={Keys(token_file.read_text().strip()).session}"
                try:
                    state = get(port, cookie)
                except OSError:
                    pass
        window, requests = OPTIONS["window"], OPTIONS["requests"]
        pid = process.pid

        started, cpu = time.monotonic(), cpu_seconds(pid)
        time.sleep(window)  # measuring a window of time, nothing to synchronise with
        feed_rate = (cpu_seconds(pid) - cpu) / (time.monotonic() - started)

        started, cpu = time.monotonic(), cpu_seconds(pid)
        for _ in range(requests):
            get(port, cookie)
        elapsed = time.monotonic() - started
        per_refresh = (cpu_seconds(pid) - cpu - feed_rate * elapsed) / requests

        started, cpu = time.monotonic(), cpu_seconds(pid)
        while time.monotonic() - started < window:
            get(port, cookie)
            time.sleep(2.0)  # the page's own polling interval
        polled_rate = (cpu_seconds(pid) - cpu) / (time.monotonic() - started)

        memory = memory_kib(pid)
        print(json.dumps({
            "workers": len(state["live"]["workers"]),
            "rss_mib": round(memory["VmRSS"] / 1024, 1), "peak_rss_mib": round(memory["VmHWM"] / 1024, 1),
            "feed_cpu_percent": round(100 * feed_rate, 2),
            "refresh_cpu_ms": round(1000 * per_refresh, 2), "refresh_wall_ms": round(1000 * elapsed / requests, 2),
            "one_page_polling_cpu_percent": round(100 * polled_rate, 2),
            "state_json_bytes": len(json.dumps(state)),
        }, indent=2))
    finally:
        process.terminate()
        process.wait(30)


def get(port: int, cookie: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/state", headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=OPTIONS["window"], help="seconds per CPU window")
    parser.add_argument("--requests", type=int, default=OPTIONS["requests"], help="refreshes timed back to back")
    args = parser.parse_args()
    OPTIONS.update(window=args.window, requests=args.requests)
    return pytest.main([__file__, "-q", "-s", "-p", "tests.conftest", "--rootdir", str(ROOT),
                        "-o", "addopts=", "-W", "ignore::DeprecationWarning"])


if __name__ == "__main__":
    sys.exit(main())
