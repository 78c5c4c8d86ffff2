"""The camera proxy's requests (session.dashboard.video) against the stand-in web_video_server the stand-in workers
run (tests/session/standin/web_video_server.py), served here on this host's Python."""

from __future__ import annotations

import http.client
import threading
from http.server import ThreadingHTTPServer
from typing import Iterator

import pytest

from session.dashboard.video import TOPICS, VideoRequestError, open_stream, parse_request
from tests.session.standin import web_video_server


@pytest.fixture
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), web_video_server.Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_requests_name_a_known_camera_and_bounded_numbers():
    assert parse_request({}).path() == "/stream?topic=/racecar/deepracer/kvs_stream&quality=75&width=480&height=360"
    assert parse_request({"camera": "front", "quality": "10", "width": "160", "height": "120"}).topic == \
        TOPICS["front"]
    for query, message in (({"camera": "/rosout"}, "unknown camera '/rosout'"),
                           ({"quality": "0"}, "quality must be a whole number from 1 to 100, got 0"),
                           ({"width": "wide"}, "width must be a whole number from 16 to 1920, got 'wide'"),
                           ({"height": "5000"}, "height must be a whole number from 16 to 1080, got 5000")):
        with pytest.raises(VideoRequestError, match=message):
            parse_request(query)


def test_a_stream_is_multipart_jpeg_frames_of_the_size_asked(server: int):
    upstream = open_stream("127.0.0.1", parse_request({"width": "160", "height": "120", "quality": "50"}),
                           port=server)
    assert (upstream.status, upstream.content_type) == (200, "multipart/x-mixed-replace;boundary=boundarydonotcross")
    body = b""
    for chunk in upstream.chunks():
        body += chunk
        if body.count(b"\xff\xd9") >= 2:  # two whole JPEGs (each ends with EOI)
            break
    parts = body.split(b"--boundarydonotcross\r\n")
    assert parts[0] == b"" and parts[1].startswith(b"Content-type: image/jpeg\r\nX-Timestamp: ")
    headers, _, jpeg = parts[1].partition(b"\r\n\r\n")
    length = int(dict(line.split(b": ", 1) for line in headers.split(b"\r\n"))[b"Content-Length"])
    assert jpeg[:length].startswith(b"\xff\xd8") and jpeg[length:] == b"\r\n"
    from io import BytesIO

    from PIL import Image

    assert Image.open(BytesIO(jpeg[:length])).size == (160, 120)


def test_the_stand_in_refuses_what_web_video_server_refuses(server: int):
    # An unknown stream type: the stock 404. A topic nobody publishes (the sub camera is off): the header, then
    # the inactive streamer is cleaned up and the connection closes without a frame.
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    connection.request("GET", "/stream?topic=/racecar/deepracer/kvs_stream&type=gif")
    assert connection.getresponse().status == 404
    connection.close()
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    connection.request("GET", "/stream?topic=/sub_camera/zed/rgb/image_rect_color")
    answer = connection.getresponse()
    assert answer.status == 200 and answer.read() == b"--boundarydonotcross\r\n"
    connection.close()
    # The proxy tells that apart from a stream: no frame came.
    upstream = open_stream("127.0.0.1", parse_request({"camera": "sub"}), port=server)
    assert (upstream.status, upstream.frames, b"".join(upstream.chunks())) == (200, False, b"")
