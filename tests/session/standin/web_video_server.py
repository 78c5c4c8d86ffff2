"""Stand-in for the simulator's ROS `web_video_server` (RobotWebTools/web_video_server, the ROS 2 branch the
simapp's launch files start in every robomaker container): an HTTP server on 8080 whose `/stream` serves a real
MJPEG stream of a made-up camera picture, the way the real one serves a ROS image topic.

What it follows of the real server (src/web_video_server.cpp, src/streamers/jpeg_streamers.cpp,
src/multipart_stream.cpp):
- `GET /stream?topic=<topic>&type=<type>&quality=<q>&width=<w>&height=<h>`; `type` defaults to `mjpeg`, and a
  type it does not know gets the stock 404 reply (`handle_stream`). The other paths it serves (`/`,
  `/stream_viewer`, `/snapshot`) are not stood in for: 404 here, which is what the real one answers for a path
  it has no handler for.
- The MJPEG answer: 200 with `Content-type: multipart/x-mixed-replace;boundary=boundarydonotcross`, `Connection:
  close`, `Server: web_video_server`, no-cache headers, then `--boundarydonotcross\\r\\n` and per frame the part
  headers `Content-type: image/jpeg`, `X-Timestamp`, `Content-Length`, the JPEG (`quality` default 95, resized
  to `width` x `height` when given), and `\\r\\n--boundarydonotcross\\r\\n`.
- A topic nobody publishes: the streamer sends its initial header, finds no such topic, goes inactive and is
  cleaned up, so the answer is the header and the first boundary, then the connection closes with no frame
  (ImageTransportImageStreamer::start, WebVideoServer::cleanup_inactive_streams).
Published here: the chase camera with overlay, the chase camera and the front camera; the sub camera only with
CAMERA_SUB_ENABLE=True, as the simapp starts it only then.
"""

from __future__ import annotations

import io
import math
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

BOUNDARY = "boundarydonotcross"
FPS = 5.0  # the real camera publishes at 15 Hz; fewer frames keep the tests' CPU for the simulation
SIZE = (640, 480)  # the simapp's camera resolution


def published_topics() -> list[str]:
    topics = ["/racecar/deepracer/kvs_stream", "/racecar/main_camera/zed/rgb/image_rect_color",
              "/racecar/camera/zed/rgb/image_rect_color"]
    if os.environ.get("CAMERA_SUB_ENABLE", "False").lower() == "true":
        topics.append("/sub_camera/zed/rgb/image_rect_color")
    return topics


def frame(topic: str, number: int, width: int, height: int, quality: int) -> bytes:
    """One JPEG: a car (a dot) going round an oval, with the worker and frame number written on it."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", SIZE, (40, 110, 60))
    draw = ImageDraw.Draw(image)
    draw.ellipse((60, 60, 580, 420), outline=(90, 90, 90), width=40)
    angle = number * 2 * math.pi / 50
    x, y = 320 + 260 * math.cos(angle), 240 + 180 * math.sin(angle)
    draw.ellipse((x - 14, y - 14, x + 14, y + 14), fill=(220, 30, 30))
    worker = int(os.environ.get("ROLLOUT_IDX") or 0) + 1
    draw.text((12, 10), f"worker {worker}  {topic}  frame {number}", fill=(255, 255, 255))
    if (width, height) != SIZE:
        image = image.resize((width, height))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


class Handler(BaseHTTPRequestHandler):
    server_version = "web_video_server"
    sys_version = ""
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:  # the worker's log is the simulator's
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        # An unknown type is the real server's 404; its other types (png, vp8, ...) are not stood in for: 404 too.
        if url.path != "/stream" or query.get("type", "mjpeg") != "mjpeg":
            self.send_error(404)
            return
        topic = query.get("topic", "")
        quality = int(query.get("quality", 95))
        width, height = int(query.get("width", -1)), int(query.get("height", -1))
        width, height = (width if width > 0 else SIZE[0]), (height if height > 0 else SIZE[1])
        self.send_response(200)
        for name, value in (("Connection", "close"),
                            ("Cache-Control", "no-cache, no-store, must-revalidate, pre-check=0, post-check=0, "
                                              "max-age=0"),
                            ("Pragma", "no-cache"), ("Content-type", f"multipart/x-mixed-replace;boundary={BOUNDARY}"),
                            ("Access-Control-Allow-Origin", "*")):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(f"--{BOUNDARY}\r\n".encode())
        if topic not in published_topics() and topic.lstrip("/") not in [t.lstrip("/") for t in published_topics()]:
            return  # inactive streamer: cleaned up, the connection closes
        number = 0
        try:
            while True:
                data = frame(topic, number, width, height, quality)
                self.wfile.write(f"Content-type: image/jpeg\r\nX-Timestamp: {time.monotonic():.6f}\r\n"
                                 f"Content-Length: {len(data)}\r\n\r\n".encode())
                self.wfile.write(data)
                self.wfile.write(f"\r\n--{BOUNDARY}\r\n".encode())
                self.wfile.flush()
                number += 1
                time.sleep(1 / FPS)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client went away: the real streamer goes inactive the same way


def main(argv: list[str]) -> int:
    port = int(argv[1]) if len(argv) > 1 else 8080
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
