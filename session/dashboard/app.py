"""The dashboard's web app (Starlette): the page, its JSON, the controls (stop, increment, evaluate a clone, export,
car package) and the workers' video, behind the host's token.

Every response carries a strict Content-Security-Policy (scripts, styles and images from this origin only, no
inline script, no frames), `nosniff` and no referrer. `Guard` admits a request only with the session cookie (or,
on `/`, the token itself, which is swapped for the cookie), only for the Host names of this machine's loopback
(DNS rebinding), and a POST only with the page's CSRF token and, when the browser names one, this origin.
"""

from __future__ import annotations

import contextlib
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Optional

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from session.core.errors import DeepracerError
from session.dashboard.access import COOKIE, CSRF_HEADER, QUERY, Keys
from session.dashboard.api import CostFacts, state_json
from session.dashboard.feed import LiveFeed
from session.dashboard.video import CameraRoute, VideoRequestError, open_stream, parse_request

if TYPE_CHECKING:  # pragma: no cover
    from session.core.config import RunConfig, SystemConfig
    from session.engine.containers import ContainerInfo
    from session.run.state import RunState

STATIC = Path(__file__).resolve().parent / "static"
PAGE = Path(__file__).resolve().parent / "page.html"  # a template: the CSRF token goes in
CSRF_PLACEHOLDER = "__CSRF_TOKEN__"
ALLOWED_HOSTS = ("127.0.0.1", "localhost")  # what a browser names through a port forward or an SSH tunnel
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
_SAFE_METHODS = ("GET", "HEAD")
_REFUSED_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>DeepRacer dashboard</title></head>
<body><h1>This dashboard needs its token</h1><p>Open the address <code>deepracer dashboard</code> printed at its first
start (<code>http://127.0.0.1:PORT/?token=...</code>); the token is also in the file it named, readable by the user
who trains.</p></body></html>"""


class Guard:
    """ASGI middleware: security headers on every answer; the cookie (or the token on `/`) for every request; the
    CSRF token and the same origin for every request that is not a GET or HEAD."""

    def __init__(self, app: ASGIApp, keys: Keys) -> None:
        self.app, self.keys = app, keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        request = Request(scope)
        refusal = self._refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send_secured)
            return
        await self.app(scope, receive, send_secured)

    def _refusal(self, request: Request) -> Optional[Response]:
        handing_over = request.url.path == "/" and QUERY in request.query_params
        if not handing_over and not self.keys.session_matches(request.cookies.get(COOKIE)):
            return _refused(request, 401, "the dashboard's token is needed")
        if request.method not in _SAFE_METHODS:
            if not self.keys.csrf_matches(request.headers.get(CSRF_HEADER)):
                return _refused(request, 403, "missing or wrong CSRF token")
            origin = request.headers.get("origin")
            if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
                return _refused(request, 403, f"cross-origin request from {origin}")
        return None


def _refused(request: Request, status: int, why: str) -> Response:
    if request.url.path.startswith("/api/") or request.method not in _SAFE_METHODS:
        return JSONResponse({"error": why}, status_code=status)
    if status == 401 and request.url.path == "/":
        return HTMLResponse(_REFUSED_PAGE, status_code=status)
    return PlainTextResponse(why, status_code=status)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def create_app(*, keys: Keys, feed: LiveFeed, system: "SystemConfig", run: "RunConfig",
               stop: Callable[[], list[str]], car_package: Callable[[], tuple[str, bytes]],
               address: Callable[["ContainerInfo"], Optional[CameraRoute]],
               read_run_state: Callable[[], Optional["RunState"]],
               increment: Optional[Callable[[], list[str]]] = None,
               evaluate_clone: Optional[Callable[[], list[str]]] = None,
               export: Optional[Callable[[], list[str]]] = None,
               cost: Callable[[], CostFacts] = CostFacts,
               now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
               on_close: Callable[[], None] = lambda: None) -> Starlette:
    """The app for one run. `stop` stops it the way `deepracer stop` does and returns what it said; `car_package`
    makes the car's model package of its best checkpoint as `deepracer models car-package` does (file name,
    bytes); `increment`, `evaluate_clone` and `export` do what `deepracer increment`, `deepracer evaluate --clone
    --detach` and `deepracer models export --checkpoint best` do and return what they said (a control left out
    answers 404); `address` gives where a worker container's camera is reached now (session.dashboard.cameras);
    `read_run_state` the host's run state; `cost` what the host knows of its cost (session.dashboard.api.CostFacts);
    `on_close` runs when the server ends."""
    page = PAGE.read_text().replace(CSRF_PLACEHOLDER, keys.csrf)
    stopping = threading.Lock()
    # One control at a time besides stop (an increment rewrites the run.env an evaluation reads); stop always can.
    busy = threading.Lock()
    doing: dict[str, str] = {}

    async def index(request: Request) -> Response:
        given = request.query_params.get(QUERY)
        if given is not None:
            if not keys.token_matches(given):
                return HTMLResponse(_REFUSED_PAGE, status_code=401)
            # The token leaves the address bar (and the history) at once; the cookie carries the session.
            response: Response = RedirectResponse("/", status_code=303)
            response.set_cookie(COOKIE, keys.session, httponly=True, samesite="strict", path="/")
            return response
        return HTMLResponse(page, headers={"cache-control": "no-store"})

    async def state(request: Request) -> Response:
        reading = feed.latest()
        document = await run_in_threadpool(
            lambda: state_json(system=system, run=run, snapshot=reading.snapshot, containers=reading.containers,
                               run_state=read_run_state(), now=now(), feed_error=reading.error, cost=cost()))
        return JSONResponse(document, headers={"cache-control": "no-store"})

    async def stop_run(request: Request) -> Response:
        if not stopping.acquire(blocking=False):
            return JSONResponse({"error": "a stop is already under way"}, status_code=409)
        try:
            lines = await run_in_threadpool(stop)
        except DeepracerError as error:  # the run state unwritable, the engine unreachable, ...
            return JSONResponse({"error": _one_line(error)}, status_code=409)
        finally:
            stopping.release()
        return JSONResponse({"lines": lines}, headers={"cache-control": "no-store"})

    def control(what: str, work: Optional[Callable[[], list[str]]]) -> Callable[[Request], Any]:
        """A POST that runs `work` off the event loop, one control at a time; the CLI's refusal is one line."""

        async def run_control(request: Request) -> Response:
            if work is None:
                return JSONResponse({"error": f"{what} is not offered by this dashboard"}, status_code=404)
            if not busy.acquire(blocking=False):
                return JSONResponse({"error": f"{doing.get('now', 'another control')} is already under way"},
                                    status_code=409)
            doing["now"] = what
            try:
                lines = await run_in_threadpool(work)
            except DeepracerError as error:  # what the command would refuse with, as it says it
                return JSONResponse({"error": _one_line(error)}, status_code=409)
            finally:
                busy.release()
            return JSONResponse({"lines": lines}, headers={"cache-control": "no-store"})

        return run_control

    async def package(request: Request) -> Response:
        try:
            name, data = await run_in_threadpool(car_package)
        except DeepracerError as error:  # no checkpoint with a frozen graph yet, storage unreachable, ...
            return JSONResponse({"error": str(error)}, status_code=409)
        return Response(data, media_type="application/gzip",
                        headers={"content-disposition": f'attachment; filename="{name}"', "cache-control": "no-store"})

    async def video(request: Request) -> Response:
        try:
            wanted = parse_request(request.query_params)
        except VideoRequestError as error:
            return PlainTextResponse(str(error), status_code=404)
        number = request.path_params["worker"]
        workers = [c for c in feed.latest().containers if c.role == "worker" and c.worker == number and c.running]
        if not workers:
            return PlainTextResponse(f"worker {number} is not running", status_code=404)
        try:
            where = await run_in_threadpool(address, workers[0])
        except DeepracerError as error:  # the engine, or the camera relay a swarm's worker is reached through
            return PlainTextResponse(f"worker {number}'s camera cannot be reached: {error}", status_code=502)
        if where is None:
            return PlainTextResponse(f"worker {number} has no address on the run's network now", status_code=502)
        try:
            upstream = await run_in_threadpool(open_stream, where, wanted)
        except OSError as error:
            return PlainTextResponse(f"worker {number}'s web_video_server does not answer: {error}",
                                     status_code=502)
        if upstream.status == 200 and not upstream.frames:
            return PlainTextResponse(f"worker {number} publishes no picture on {wanted.topic} (the sub camera needs "
                                     "DR_CAMERA_SUB_ENABLE)", status_code=404)
        if upstream.status != 200 or not upstream.content_type.startswith("multipart/x-mixed-replace"):
            upstream.close()
            return PlainTextResponse(f"worker {number}'s web_video_server answered {upstream.status} "
                                     f"{upstream.content_type} {upstream.detail}".rstrip(), status_code=502)
        return StreamingResponse(upstream.chunks(), media_type=upstream.content_type,
                                 headers={"cache-control": "no-store"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        feed.start()
        try:
            yield
        finally:
            feed.close()
            await run_in_threadpool(on_close)

    routes: list[Any] = [
        Route("/", index),
        Route("/api/state", state),
        Route("/api/stop", stop_run, methods=["POST"]),
        Route("/api/car-package", package, methods=["POST"]),
        Route("/api/increment", control("an increment", increment), methods=["POST"]),
        Route("/api/evaluate-clone", control("an evaluation's start", evaluate_clone), methods=["POST"]),
        Route("/api/export", control("an export", export), methods=["POST"]),
        Route("/video/{worker:int}", video),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(ALLOWED_HOSTS)),
                  Middleware(Guard, keys=keys)]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
