"""The camera relay (session.dashboard.camera_relay) on this host's Python, without a container: what it passes on
and what it refuses, and a stream through its unix socket from the stand-in web_video_server
(tests/session/standin/web_video_server.py). The relay in its container on a real swarm's overlay:
test_remote_cameras.py."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from session.dashboard import camera_relay
from session.dashboard.video import TOPICS, CameraRoute, open_stream, parse_request
from tests.session.standin import web_video_server

OVERLAY = [ipaddress.ip_network("10.0.1.0/24")]
CAMERAS = list(TOPICS.values())


def test_only_camera_topics_of_addresses_on_the_overlay_are_passed_on():
    asked = "GET /10.0.1.5/stream?topic=/racecar/deepracer/kvs_stream&quality=75&width=480&height=360 HTTP/1.1"
    assert camera_relay.target(asked, OVERLAY, CAMERAS) == (
        "10.0.1.5", "/stream?topic=/racecar/deepracer/kvs_stream&quality=75&width=480&height=360")
    for line, why in (
            ("GET /10.0.2.5/stream?topic=/racecar/deepracer/kvs_stream HTTP/1.1", "10.0.2.5 is not on the run's"),
            ("GET /169.254.169.254/stream?topic=/racecar/deepracer/kvs_stream HTTP/1.1", "not on the run's network"),
            ("GET /minio/stream?topic=/racecar/deepracer/kvs_stream HTTP/1.1", "'minio' is no worker address"),
            ("GET /10.0.1.5/stream?topic=/rosout HTTP/1.1", "only a camera's topic"),
            ("GET /10.0.1.5/stream?topic=/racecar/deepracer/kvs_stream&topic=/rosout HTTP/1.1", "only a camera's"),
            ("GET /10.0.1.5/snapshot?topic=/racecar/deepracer/kvs_stream HTTP/1.1", "only web_video_server's /stream"),
            ("GET /10.0.1.5/stream?topic=/racecar/deepracer/kvs_stream&type=ros_compressed HTTP/1.1",
             "only height, quality, topic, width"),
            ("POST /10.0.1.5/stream?topic=/racecar/deepracer/kvs_stream HTTP/1.1", "only GET"),
            ("CONNECT 10.0.1.5:22 HTTP/1.1", "only GET")):
        with pytest.raises(ValueError, match=why):
            camera_relay.target(line, OVERLAY, CAMERAS)


@pytest.fixture
def web_video(monkeypatch) -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), web_video_server.Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setattr(camera_relay, "PORT", httpd.server_address[1])  # 8080 in a worker; any free port here
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def relay(tmp_path: Path, web_video: int) -> Iterator[str]:
    path = str(tmp_path / "camera.sock")
    arguments = [path, "--network", "127.0.0.0/8"]
    for topic in CAMERAS:
        arguments += ["--topic", topic]
    threading.Thread(target=camera_relay.main, args=(arguments,), daemon=True).start()
    deadline = time.monotonic() + 10
    while True:  # the listening socket appearing is the signal; there is no event to wait on
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(path)
                break
            except OSError:
                assert time.monotonic() < deadline, "the relay did not listen"
                time.sleep(0.02)
    yield path


def test_a_stream_through_the_relay_is_the_workers_and_a_refusal_is_a_status(relay: str):
    upstream = open_stream(CameraRoute("127.0.0.1", relay=relay), parse_request({"width": "160", "height": "120"}))
    assert (upstream.status, upstream.frames) == (200, True)
    assert upstream.content_type == "multipart/x-mixed-replace;boundary=boundarydonotcross"
    body = b""
    for chunk in upstream.chunks():
        body += chunk
        if body.count(b"\xff\xd9") >= 2:
            break
    assert body.startswith(b"--boundarydonotcross\r\nContent-type: image/jpeg\r\n")
    refused = open_stream(CameraRoute("10.9.9.9", relay=relay), parse_request({}))
    assert (refused.status, refused.content_type, refused.detail) == (
        403, "text/plain; charset=utf-8", "10.9.9.9 is not on the run's network")
    # The topic nobody publishes still ends without a frame, through the relay as directly.
    silent = open_stream(CameraRoute("127.0.0.1", relay=relay), parse_request({"camera": "sub"}))
    assert (silent.status, silent.frames) == (200, False)


def test_a_worker_that_does_not_answer_is_a_bad_gateway(relay: str, monkeypatch):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setattr(camera_relay, "PORT", closed.getsockname()[1])  # bound, not listening: refused
        answer = open_stream(CameraRoute("127.0.0.1", relay=relay), parse_request({}))
        assert answer.status == 502 and answer.detail.startswith("127.0.0.1:") and "does not answer" in answer.detail
