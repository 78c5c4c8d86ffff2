"""Spot interruption notices from the instance metadata service, and the graceful stop they trigger.

`deepracer spot-watch` (deepracer-spot-watch.service, on every boot) asks every 5 seconds:

- **AWS**: IMDSv2 `GET /latest/meta-data/spot/instance-action` with a session token (`PUT /latest/api/token`).
  404 means no notice; a notice is `{"action": "stop" | "terminate" | "hibernate", "time": "<UTC>"}`, about two
  minutes ahead. With the stack's persistent spot request, `stop` is what comes, and AWS starts the instance
  again when capacity returns.
- **Azure**: Scheduled Events `GET /metadata/scheduledevents?api-version=2020-07-01` with `Metadata: true`.
  `Preempt` is the spot eviction (about 30 s ahead; the stack evicts with Deallocate), `Terminate`, `Reboot` and
  `Redeploy` end or move the VM as well; `Freeze` (a pause of seconds) needs nothing. Events naming other VMs are
  not ours. Once training is stopped the event is acknowledged (`POST` with `StartRequests`), which lets Azure
  go ahead at once. Azure only starts reporting events to a VM after its first request, hence polling from boot.

On a notice the run recorded in the run state (starting, running or resuming) is stopped gracefully
(session.lifecycle.stopping.interrupt): containers stopped with `stop_training` within the notice's time, logs
saved to `<prefix>/logs/`, the newest complete checkpoint in storage recorded, the run marked interrupted, so that
deepracer-resume.service continues it at the next boot; on Azure its prefix (and any evaluation's) is copied to
Blob until the notice's NotBefore, the newest checkpoint first. Requests go straight to the link-local address,
never through a proxy.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Optional, Protocol

from session.core import console
from session.core.config import SystemConfig
from session.core.console import Say
from session.core.metadata import IMDS, METADATA_TIMEOUT_S, NoticeError, metadata_request
from session.engine.containers import Engine
from session.host.factory import HostFactory, open_storage
from session.lifecycle.stopping import AfterStop, StopReport, interrupt, keep_evaluations
from session.run.state import Event, RunStateStore
from session.storage.keeper import Keeper

POLL_S = 5.0
AWS_TOKEN_TTL_S = 21600
AZURE_EVENTS = "/metadata/scheduledevents?api-version=2020-07-01"
AZURE_VM_NAME = "/metadata/instance/compute/name?api-version=2021-02-01&format=text"
AZURE_STOPPING = ("Preempt", "Terminate", "Reboot", "Redeploy")



@dataclass(frozen=True)
class Notice:
    """An announced interruption: what will happen (`action`, as the cloud names it) and when."""

    cloud: str  # aws | azure
    action: str
    not_before: Optional[datetime] = None  # UTC; None when the cloud did not say (an Azure event already started)
    event_id: Optional[str] = None  # Azure's, to acknowledge
    raw: Any = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        return self.event_id or f"{self.action}@{self.not_before}"

    def seconds_left(self, now: datetime) -> Optional[float]:
        return None if self.not_before is None else (self.not_before - now).total_seconds()

    def describe(self, now: datetime) -> str:
        left = self.seconds_left(now)
        when = f"in {max(0, left):.0f} s" if left is not None else "now"
        return f"{self.cloud} announces '{self.action}' {when}"


class NoticeSource(Protocol):
    def check(self) -> Optional[Notice]: ...

    def acknowledge(self, notice: Notice) -> None: ...


class AwsNotices:
    """IMDSv2's spot/instance-action."""

    def __init__(self, base_url: str = IMDS, timeout: float = METADATA_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base_url, self.timeout, self._clock = base_url.rstrip("/"), timeout, clock
        self._token: Optional[str] = None
        self._token_until = 0.0

    def _session_token(self, fresh: bool = False) -> str:
        if fresh or self._token is None or self._clock() >= self._token_until:
            status, body = metadata_request(f"{self.base_url}/latest/api/token", method="PUT", timeout=self.timeout,
                                            headers={"X-aws-ec2-metadata-token-ttl-seconds": str(AWS_TOKEN_TTL_S)})
            if status != 200:
                raise NoticeError(f"IMDSv2 refused a session token: HTTP {status}")
            self._token, self._token_until = body.decode().strip(), self._clock() + AWS_TOKEN_TTL_S - 60
        return self._token

    def check(self) -> Optional[Notice]:
        url = f"{self.base_url}/latest/meta-data/spot/instance-action"
        status, body = metadata_request(url, headers={"X-aws-ec2-metadata-token": self._session_token()},
                                        timeout=self.timeout)
        if status == 401:  # the token expired early (e.g. the instance was stopped and started)
            status, body = metadata_request(url, timeout=self.timeout,
                                            headers={"X-aws-ec2-metadata-token": self._session_token(fresh=True)})
        if status == 404:
            return None
        if status != 200:
            raise NoticeError(f"spot/instance-action answered HTTP {status}")
        try:
            document = json.loads(body)
            return Notice("aws", str(document["action"]), _iso_time(document.get("time")), raw=document)
        except (ValueError, KeyError, TypeError):
            raise NoticeError(f"spot/instance-action: expected {{\"action\", \"time\"}}, got {body[:200]!r}") from None

    def acknowledge(self, notice: Notice) -> None:
        """AWS takes no acknowledgement."""


class AzureNotices:
    """Scheduled Events: the first event of a kind that stops this VM."""

    def __init__(self, base_url: str = IMDS, timeout: float = METADATA_TIMEOUT_S,
                 vm_name: Optional[str] = None) -> None:
        self.base_url, self.timeout = base_url.rstrip("/"), timeout
        self._vm_name = vm_name

    def _get(self, path: str) -> bytes:
        status, body = metadata_request(f"{self.base_url}{path}", headers={"Metadata": "true"}, timeout=self.timeout)
        if status != 200:
            raise NoticeError(f"{path.split('?')[0]} answered HTTP {status}: {body[:200].decode('utf-8', 'replace')}")
        return body

    def vm_name(self) -> str:
        if self._vm_name is None:
            self._vm_name = self._get(AZURE_VM_NAME).decode().strip()
        return self._vm_name

    def check(self) -> Optional[Notice]:
        body = self._get(AZURE_EVENTS)
        try:
            events = json.loads(body).get("Events") or []
        except (ValueError, AttributeError):
            raise NoticeError(f"scheduledevents: expected JSON with Events, got {body[:200]!r}") from None
        for event in events:
            if not isinstance(event, dict) or event.get("EventType") not in AZURE_STOPPING:
                continue
            resources = event.get("Resources") or []
            if resources and self.vm_name() not in resources:
                continue
            return Notice("azure", event["EventType"], _http_time(event.get("NotBefore")),
                          event_id=event.get("EventId"), raw=event)
        return None

    def acknowledge(self, notice: Notice) -> None:
        """Approves a scheduled event (Azure takes approvals of scheduled events only)."""
        if not notice.event_id or (notice.raw or {}).get("EventStatus", "Scheduled") != "Scheduled":
            return
        body = json.dumps({"StartRequests": [{"EventId": notice.event_id}]}).encode()
        status, answer = metadata_request(f"{self.base_url}{AZURE_EVENTS}", method="POST", body=body,
                                          headers={"Metadata": "true", "Content-Type": "application/json"},
                                          timeout=self.timeout)
        if status not in (200, 201, 202, 204):
            raise NoticeError(f"acknowledging event {notice.event_id} answered HTTP {status}: "
                              f"{answer[:200].decode('utf-8', 'replace')}")


def _iso_time(text: Any) -> Optional[datetime]:
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _http_time(text: Any) -> Optional[datetime]:
    """Azure's NotBefore: `Mon, 19 Sep 2016 18:29:47 GMT`, empty once the event started."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return parsedate_to_datetime(text).astimezone(timezone.utc)
    except (TypeError, ValueError):
        return None


def stop_timeout(seconds_left: Optional[float]) -> float:
    """Seconds `docker stop` waits per phase (trainer, its sibling, workers) before killing: a sixth of the
    notice, so that three phases and the log upload fit in it (AWS' two minutes: 20 s; Azure's 30 s: 5 s)."""
    if seconds_left is None:
        return 5.0
    return max(3.0, min(30.0, seconds_left / 6))


Bystanders = Callable[[], tuple[Keeper, Engine]]  # what keeps the evaluations when no training is recorded


def handle_notice(notice: Notice, *, store: RunStateStore, host_factory: Optional[HostFactory] = None,
                  say: Say = console.say, now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                  after_stop: Optional[AfterStop] = None,
                  bystanders: Optional[Bystanders] = None) -> Optional[StopReport]:
    """The graceful stop for a notice; the run is left resumable. The models are kept (Azure: to Blob) until
    the notice's NotBefore, the newest checkpoint first. `after_stop` (e.g. an e-mail) runs once the stop and the
    checkpoint are recorded and the models kept, with whatever time the notice leaves. With no training recorded,
    `bystanders` (the host's keeper and engine) keeps the evaluations' models."""
    report = interrupt(store, event=Event.NOTICE, reason=f"spot interruption ({notice.describe(now())})",
                       timeout=stop_timeout(notice.seconds_left(now())), host_factory=host_factory, say=say, now=now,
                       after_stop=after_stop, deadline=notice.not_before)
    if report is None and bystanders is not None:
        try:
            keeper, engine = bystanders()
        except Exception as failure:  # noqa: BLE001 - the host is going down: say it, go on
            say(f"keeping the evaluations' models: {type(failure).__name__}: {failure}")
        else:
            keep_evaluations(keeper, engine, deadline=notice.not_before, now=now, say=say)
    return report


def host_bystanders(system: SystemConfig) -> Bystanders:
    """The keeper and engine of this host as system.env names them (MinIO started if need be), built on use."""
    def build() -> tuple[Keeper, Engine]:
        engine = Engine()
        return Keeper(system, open_storage(system, engine)), engine

    return build


class SpotWatcher:
    """Polls a notice source and handles each notice once; `check_once` is one poll."""

    def __init__(self, source: NoticeSource, handle: Callable[[Notice], Any], *, interval: float = POLL_S,
                 sleep: Callable[[float], None] = time.sleep, say: Say = console.say) -> None:
        self.source, self.handle, self.interval, self._sleep, self.say = source, handle, interval, sleep, say
        self.handled: list[Notice] = []
        self._last_error: Optional[str] = None
        self._busy = False
        self._leave = False

    def check_once(self) -> Optional[Notice]:
        """Handles a new notice (then acknowledges it) and returns it; None when there is none."""
        try:
            notice = self.source.check()
        except NoticeError as error:
            if str(error) != self._last_error:  # once per distinct problem, not every 5 s
                self.say(f"spot watch: {error}")
                self._last_error = str(error)
            return None
        self._last_error = None
        if notice is None or notice.key in {seen.key for seen in self.handled}:
            return None
        self.handled.append(notice)
        self.say(f"spot watch: {notice.describe(datetime.now(timezone.utc))}")
        self._busy = True
        try:
            self.handle(notice)
        finally:
            self._busy = False
            try:
                self.source.acknowledge(notice)
            except NoticeError as error:
                self.say(f"spot watch: {error}")
        return notice

    def run(self, checks: Optional[int] = None) -> None:
        """Polls until stopped (or `checks` polls). SIGTERM (the host shutting down) waits for a stop in
        progress to finish."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_sigterm)
        count = 0
        while not self._leave and (checks is None or count < checks):
            self.check_once()
            count += 1
            if not self._leave and (checks is None or count < checks):
                self._sleep(self.interval)

    def _on_sigterm(self, *_: Any) -> None:
        self._leave = True
        if not self._busy:
            raise SystemExit(0)


def source_for(cloud: str, base_url: str = IMDS) -> Optional[NoticeSource]:
    return {"aws": AwsNotices, "azure": AzureNotices}.get(cloud, lambda *_: None)(base_url)


def watch(system: SystemConfig, *, store: Optional[RunStateStore] = None, base_url: str = IMDS,
          host_factory: Optional[HostFactory] = None, after_stop: Optional[AfterStop] = None,
          say: Say = console.say, checks: Optional[int] = None) -> int:
    """`deepracer spot-watch`: polls until stopped; 0 at once where no cloud sends notices."""
    source = source_for(system.cloud, base_url)
    if source is None:
        say(f"spot watch: DR_CLOUD={system.cloud} sends no interruption notices; nothing to watch")
        return 0
    store = store or RunStateStore()
    say(f"spot watch: asking {system.cloud}'s metadata service every {POLL_S:.0f} s; the run state is {store.path}")
    bystanders = host_bystanders(system)
    watcher = SpotWatcher(source, lambda notice: handle_notice(notice, store=store, host_factory=host_factory,
                                                               after_stop=after_stop, say=say,
                                                               bystanders=bystanders), say=say)
    watcher.run(checks)
    return 0
