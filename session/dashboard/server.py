"""`deepracer dashboard`: the app for the configured run, served by uvicorn on 127.0.0.1 only.

Why these: Starlette is a small, typed, well-kept ASGI toolkit (the core of FastAPI) with the pieces needed here
and nothing else (routing, cookies, static files, streaming responses, a trusted-host check); uvicorn is its usual
server, here on its pure-Python HTTP parser (h11), so the host needs no compiler and no extra C library. Neither is
imported by any other command (`deepracer --help` and `status` stay fast): the CLI imports this module only for
`dashboard`.

Port 8200 by default (session.core.defaults.DASHBOARD_PORT): clear of DRfC's viewer (8100), the simulator's
web_video_server (8080), Grafana (3000), Jupyter (8888) and MinIO (9000, 9001), so DRfC's habits keep working beside it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Optional

from session.core import console
from session.core.config import load_config
from session.core.console import Say
from session.core.defaults import DASHBOARD_PORT
from session.core.paths import default_dashboard_token
from session.dashboard.access import QUERY, load_or_create
from session.dashboard.api import CostFacts
from session.dashboard.app import create_app
from session.dashboard.cameras import Cameras
from session.dashboard.cost import CostSource
from session.dashboard.feed import LiveFeed
from session.engine.containers import Engine
from session.engine.specs import NETWORK, image_of
from session.host.factory import HostFactory, open_host, open_storage, storage_for
from session.insight.live import StallRules
from session.run.progress import read_progress
from session.run.state import RunState, RunStateStore
from session.run.training import run_containers
from session.storage.cost_settings import read_monthly_budget

if TYPE_CHECKING:  # pragma: no cover
    import uvicorn
    from starlette.applications import Starlette

    from session.run.progress import TrainingProgress
    from session.storage.s3 import Storage

HOST = "127.0.0.1"  # never anything else: the way in is a port forward or an SSH tunnel, with the token
EXPORT_SUFFIX = "-export"  # the export control's target: s3://<bucket>/<prefix>-export, which must be empty


def build_app(run_env: Path, system_env: Path, *, port: int = DASHBOARD_PORT, token_file: Optional[Path] = None,
              rules: StallRules = StallRules(), refresh_s: float = 1.0, progress_every_s: float = 30.0,
              engine: Optional[Engine] = None, storage: Optional["Storage"] = None,
              store: Optional[RunStateStore] = None, host_factory: Optional[HostFactory] = None,
              cost: Optional[Callable[[datetime], CostFacts]] = None, say: Say = console.say) -> "Starlette":
    """The dashboard of the run run.env names, with the host's token (made, and its URL said, at the first
    start). `host_factory` opens the Host the stop and the evaluation use (default: `open_host`, as `deepracer
    stop` and `deepracer evaluate`); `cost` gives the cost card's facts (default: session.dashboard.cost)."""
    loaded = load_config(run_env, system_env)
    system, run = loaded.system, loaded.run
    token = token_file or default_dashboard_token()
    keys, made = load_or_create(token)
    engine = engine or Engine()
    # A swarm's workers are reached through the camera relay, whose socket is in a folder beside the token: the
    # dashboard's user's only.
    cameras = Cameras(engine, image=image_of(system), network=NETWORK, relay_dir=token.parent / "camera-relay")
    store = store or RunStateStore()
    lazily: Dict[str, "Storage"] = {}

    def working() -> "Storage":
        if "storage" not in lazily:  # as `watch`: storage as it is, MinIO not started for this
            lazily["storage"] = storage if storage is not None else storage_for(system)
        return lazily["storage"]

    def progress() -> "TrainingProgress":
        return read_progress(working(), run.local_s3_model_prefix, run.local_s3_metrics_prefix)

    def package() -> tuple[str, bytes]:
        """`deepracer models car-package <prefix> --checkpoint best`, handed to the browser instead of a file."""
        from session.models.export import car_package  # start-up: the export's modules only when one is asked for
        packed = car_package(working(), run.local_s3_model_prefix, "best")
        return f"{run.local_s3_model_prefix.strip('/').replace('/', '-')}-best.tar.gz", packed.data

    def opened() -> "Storage":
        """As the CLI's commands open storage: MinIO started first where it is the working store."""
        return storage if storage is not None else open_storage(load_config(run_env, system_env).system, engine)

    def increment() -> list[str]:
        """`deepracer increment`: run.env continues from this model's last checkpoint under the next free prefix."""
        from session.run.increment import increment as increment_run  # start-up: only when one is asked for

        now_run = load_config(run_env, system_env).run  # the file as the command would read it now
        result = increment_run(run_env, now_run, opened(), checkpoint="last")
        return [result.summary(run_env),
                f"`deepracer train` starts {result.new_prefix}; restart the dashboard to follow it"]

    def evaluate_clone() -> list[str]:
        """`deepracer evaluate --clone --detach`: a copy of the model under <prefix>-E, evaluated while training
        goes on; returns once the car drives."""
        from session.run.evaluation import start_evaluation  # start-up: only when one is asked for

        lines: list[str] = []
        host = host_factory(run_env, system_env) if host_factory is not None else open_host(run_env, system_env)
        evaluation = start_evaluation(host, clone=True, say=lines.append)
        lines.append(f"evaluating {evaluation.model_prefix}; `deepracer stop-evaluation` ends it and shows the result")
        return lines

    def export() -> list[str]:
        """`deepracer models export <prefix> --checkpoint best --to s3://<bucket>/<prefix>-export`."""
        from session.models.export import export_run_model  # start-up: the export's modules only when asked for

        loaded_now = load_config(run_env, system_env)
        prefix = run.local_s3_model_prefix
        target = f"s3://{system.local_s3_bucket}/{prefix}{EXPORT_SUFFIX}"
        return export_run_model(opened(), loaded_now.system, loaded_now.run, prefix, "best", target).lines()

    def stop() -> list[str]:
        """`deepracer stop`'s path, with the files as they are now (as the command would read them)."""
        from session.lifecycle.stopping import stop_by_user  # start-up: a stop's modules only when one is asked for

        lines: list[str] = []
        host = host_factory(run_env, system_env) if host_factory is not None else open_host(run_env, system_env)
        stop_by_user(host, say=lines.append, warn=lines.append, store=store, how="from the dashboard")
        return lines

    def run_state() -> Optional[RunState]:
        return store.read_or_none()

    if cost is None:
        source = CostSource(system, history=store.history, budget=lambda: read_monthly_budget(system, working))
        cost = source.facts
    facts = cost

    feed = LiveFeed(lambda: run_containers(engine, system, run), engine.follow, read_progress=progress,
                    rules=rules, refresh_s=refresh_s, progress_every_s=progress_every_s)
    if made:
        say(f"dashboard token made and kept in {token} (0600); open, through "
            f"your tunnel: http://{HOST}:{port}/?{QUERY}={keys.token}")
    return create_app(keys=keys, feed=feed, system=system, run=run, stop=stop, car_package=package,
                      address=cameras.route, read_run_state=run_state, increment=increment,
                      evaluate_clone=evaluate_clone, export=export, cost=lambda: facts(datetime.now(timezone.utc)),
                      now=lambda: datetime.now(timezone.utc), on_close=cameras.close)


def make_server(app: "Starlette", port: int = DASHBOARD_PORT) -> "uvicorn.Server":
    """uvicorn on 127.0.0.1:port, quiet (no access log: the token's URL must not land in a journal twice)."""
    import uvicorn

    # A camera stream never ends by itself: on Ctrl-C or `systemctl stop`, open ones get 5 s, then are closed.
    config = uvicorn.Config(app, host=HOST, port=port, log_level="warning", access_log=False, lifespan="on",
                            server_header=False, proxy_headers=False, timeout_graceful_shutdown=5)
    return uvicorn.Server(config)


def serve(app: "Starlette", port: int = DASHBOARD_PORT, *, say: Say = console.say) -> int:
    """Serves `app` on 127.0.0.1:port until Ctrl-C or SIGTERM."""
    say(f"dashboard on http://{HOST}:{port}/ (Ctrl-C ends it)")
    make_server(app, port).run()
    return 0
