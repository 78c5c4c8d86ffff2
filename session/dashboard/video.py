"""Each worker's camera, proxied: the simulator's ROS `web_video_server` listens on 8080 in every robomaker
container and serves `/stream?topic=<image topic>&quality=<1-100>&width=<px>&height=<px>` as an MJPEG stream
(`multipart/x-mixed-replace`, one `image/jpeg` part per frame; RobotWebTools/web_video_server,
src/web_video_server.cpp `handle_stream`, src/multipart_stream.cpp). DRfC's viewer links the same URLs.

The dashboard reaches a worker at its address on the run's network: directly on a user-defined bridge (this host
routes to it), or, on a swarm's overlay (which the host is not on; a worker may be on another node), through the
camera relay on the overlay (session.dashboard.cameras, camera_relay), by the relay's unix socket. Nothing of any
container is published on a port; a worker that restarts gets a new address, which the next request looks up again.
Only the simulator's camera topics are passed on (the proxy is no open relay), and the numbers are bounded, so a
page cannot make the simulator encode 10k frames.
"""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass
from typing import Iterator, Mapping, Optional, Union
from urllib.parse import urlencode

from session.core.errors import DeepracerError

PORT = 8080  # web_video_server's default `port` parameter, as the simapp's launch files leave it
# name -> topic; what DRfC's viewer offers (`camera=` in its URLs) and the simapp publishes.
TOPICS = {
    "kvs": "/racecar/deepracer/kvs_stream",  # the chase camera with the overlay (the console's video)
    "main": "/racecar/main_camera/zed/rgb/image_rect_color",  # the chase camera
    "front": "/racecar/camera/zed/rgb/image_rect_color",  # what the model sees
    "sub": "/sub_camera/zed/rgb/image_rect_color",  # the top view (DR_CAMERA_SUB_ENABLE)
}
DEFAULTS = {"quality": 75, "width": 480, "height": 360}  # DRfC's viewer: quality=75&width=480
LIMITS = {"quality": (1, 100), "width": (16, 1920), "height": (16, 1080)}
CHUNK = 64 * 1024
FRAME_TYPE = b"image/jpeg"  # the MJPEG streamer's part type
DETAIL_BYTES = 300
TIMEOUT_S = 30.0  # to connect, and between two reads: a worker between episodes may pause its camera


class VideoRequestError(DeepracerError):
    """A camera request the proxy refuses (unknown topic, number out of range); `str()` says which."""


@dataclass(frozen=True)
class StreamRequest:
    camera: str
    quality: int
    width: int
    height: int

    @property
    def topic(self) -> str:
        return TOPICS[self.camera]

    def path(self) -> str:
        """web_video_server's request line target."""
        query = urlencode({"topic": self.topic, "quality": self.quality, "width": self.width,
                           "height": self.height}, safe="/")
        return f"/stream?{query}"


def parse_request(query: Mapping[str, str]) -> StreamRequest:
    """`camera=kvs|main|front|sub` (default kvs) and the numbers, checked."""
    camera = query.get("camera", "kvs")
    if camera not in TOPICS:
        raise VideoRequestError(f"unknown camera {camera!r}: one of {', '.join(TOPICS)}")
    numbers = {}
    for name, default in DEFAULTS.items():
        text = query.get(name)
        low, high = LIMITS[name]
        try:
            value = int(text) if text is not None else default
        except ValueError:
            raise VideoRequestError(f"{name} must be a whole number from {low} to {high}, got {text!r}") from None
        if not low <= value <= high:
            raise VideoRequestError(f"{name} must be a whole number from {low} to {high}, got {value}")
        numbers[name] = value
    return StreamRequest(camera, **numbers)


@dataclass
class Upstream:
    """An open stream from a worker's web_video_server: its status, content type, and its body in chunks (what was
    read ahead first). `frames` is False when the stream ended before its first frame: web_video_server answers a
    topic nobody publishes with the stream's header and then closes (its streamer finds no such topic and is
    cleaned up), e.g. the sub camera when the simulator does not start it."""

    status: int
    content_type: str
    _response: Optional[object] = None
    _ahead: bytes = b""
    frames: bool = True
    detail: str = ""  # an error answer's text (the camera relay says why it refused), on one line

    def chunks(self) -> Iterator[bytes]:
        """The body as it comes; ends when the worker ends the stream, or when the page goes away (the caller
        stops iterating and the finally closes the connection to the worker)."""
        response = self._response
        try:
            if self._ahead:
                yield self._ahead
            while response is not None:
                chunk = response.read1(CHUNK)  # type: ignore[attr-defined]  # http.client.HTTPResponse
                if not chunk:
                    return
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        if self._response is not None:
            self._response.close()  # type: ignore[attr-defined]
            self._response = None


@dataclass(frozen=True)
class CameraRoute:
    """Where a worker's web_video_server is reached: its address, directly or through the camera relay listening on
    the unix socket `relay`."""

    address: str
    relay: Optional[str] = None


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (the camera relay's)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("camera-relay", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def open_stream(where: Union[CameraRoute, str], request: StreamRequest, port: int = PORT) -> Upstream:
    """Connects to web_video_server at address:port (or through the relay, which asks port 8080 of the address),
    asks for the stream and reads up to its first frame. Raises OSError when it cannot be reached; an HTTP error
    answer is returned as an Upstream with that status and no body."""
    route = where if isinstance(where, CameraRoute) else CameraRoute(where)
    connection: http.client.HTTPConnection
    if route.relay is not None:
        connection, target = _UnixConnection(route.relay, TIMEOUT_S), f"/{route.address}{request.path()}"
    else:
        connection, target = http.client.HTTPConnection(route.address, port, timeout=TIMEOUT_S), request.path()
    try:
        connection.request("GET", target)
        response = connection.getresponse()
    except (OSError, http.client.HTTPException) as error:
        connection.close()
        raise OSError(str(error) or type(error).__name__) from error
    if response.status != 200:
        detail = response.read(DETAIL_BYTES) if response.headers.get_content_type() == "text/plain" else b""
        response.close()
        connection.close()
        return Upstream(response.status, response.headers.get("Content-Type", ""),
                        detail=" ".join(detail.decode("utf-8", "replace").split()))
    ahead = b""
    while FRAME_TYPE not in ahead.lower() and len(ahead) < CHUNK:  # a part header names the frame's type
        chunk = response.read1(CHUNK)
        if not chunk:
            response.close()
            return Upstream(response.status, response.headers.get("Content-Type", ""), frames=False)
        ahead += chunk
    return Upstream(response.status, response.headers.get("Content-Type", ""), response, ahead)
