"""Idle auto-stop: power the host off when no training or evaluation has run for DR_IDLE_STOP_MINUTES (default
30; 0 turns it off). Stop or deallocate only, never terminate: disks, models and the host itself stay.

`deepracer idle-check` runs as root every 5 minutes (deepracer-idle.timer). The decision (`decide`) is a pure
function of the containers seen running and the last activity, kept in a small state file
(/var/lib/deepracer/idle.json): a running trainer, worker or evaluation container (our labels, any run) is
activity; MinIO is not, nor a logged-in user. The clock starts no earlier than the boot (a host someone just
started gets the full time) and not before the first boot finished (its ready marker): a host still pulling the
simulator image is never stopped.

The same check keeps the run state honest (session.lifecycle.resume): a run recorded as running whose containers are
gone is marked ended, a deadline passed by more than a minute is enforced (session.lifecycle.limits), and a time limit
that asked for a power-off gets it.

Powering off (`power_off`):
- **AWS**: `systemctl poweroff`. An EBS-backed instance whose instance-initiated shutdown behaviour is `stop`
  (the stack sets it) is then stopped: no compute billed, the root volume kept. A persistent spot request
  stays disabled until you start the instance again.
- **Azure**: an OS shutdown leaves the VM *allocated and billed*, so the VM deallocates itself through the
  Azure Resource Manager REST API with its managed identity: a token from IMDS's identity endpoint, then
  `POST <vm resource id>/deallocate?api-version=2024-07-01`. The identity needs
  `Microsoft.Compute/virtualMachines/deallocate/action` on the VM (the stack grants it). Without it, the host
  powers off from inside after a loud warning: it stops computing, but Azure keeps billing it.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Optional, Sequence

from session.core.errors import DeepracerError
from session.core.paths import default_idle_state
from session.host.factory import storage_for
from session.lifecycle.spot import IMDS, NoticeError, metadata_request
from session.storage.blob import Keeper

if TYPE_CHECKING:  # pragma: no cover
    from session.core.config import SystemConfig
    from session.engine.containers import ContainerInfo, Engine
    from session.host.factory import HostFactory
    from session.lifecycle.resume import RunStateStore

CHECK_EVERY_MIN = 5  # deepracer-idle.timer's OnUnitActiveSec
ACTIVE_ROLES = ("trainer", "worker", "evaluation")
ARM = "https://management.azure.com"
ARM_API_VERSION = "2024-07-01"
DEALLOCATE_ACTION = "Microsoft.Compute/virtualMachines/deallocate/action"

Say = Callable[[str], None]


class PowerOffError(DeepracerError):
    """The cloud refused to stop this host; `str()` is one line."""


@dataclass(frozen=True)
class IdleDecision:
    """`power_off` or not, why (one line), the last activity to remember, and whether to warn logged-in
    users that the next check powers off."""

    power_off: bool
    reason: str
    last_active: Optional[datetime]
    warn: bool = False


def active_containers(containers: Iterable["ContainerInfo"]) -> list["ContainerInfo"]:
    return [c for c in containers if c.running and c.role in ACTIVE_ROLES]


def decide(*, active: Sequence[str], now: datetime, last_active: Optional[datetime], since: Optional[datetime],
           idle_minutes: int, ready: bool = True, time_limit_power_off: bool = False) -> IdleDecision:
    """The rules, in order:

    1. Before the first boot finished (`ready`), never.
    2. Something active (names of running trainer/worker/evaluation containers): stay; it is the last activity.
    3. A time limit that asked for a power-off: power off, whatever DR_IDLE_STOP_MINUTES says.
    4. DR_IDLE_STOP_MINUTES=0: never.
    5. Idle since the later of the last activity and `since` (boot, first boot's end) for `idle_minutes`:
       power off; otherwise stay, warning when the next check would power off."""
    if not ready:
        return IdleDecision(False, "the first boot has not finished: not counting idle time yet", last_active)
    if active:
        return IdleDecision(False, f"active: {', '.join(active)}", now)
    if time_limit_power_off:
        return IdleDecision(True, "training reached its time limit and DR_POWER_OFF_AFTER_MAX_MINUTES is True",
                            last_active)
    if idle_minutes <= 0:
        return IdleDecision(False, "idle auto-stop is off (DR_IDLE_STOP_MINUTES=0)", last_active)
    reference = max((moment for moment in (last_active, since) if moment is not None), default=now)
    idle = now - reference
    limit = timedelta(minutes=idle_minutes)
    idle_min = idle.total_seconds() / 60
    if idle >= limit:
        return IdleDecision(True, f"no training or evaluation for {idle_min:.0f} min "
                                  f"(DR_IDLE_STOP_MINUTES={idle_minutes})", last_active)
    left = limit - idle
    return IdleDecision(False, f"idle for {idle_min:.0f} min; powers off after {idle_minutes} "
                               f"(DR_IDLE_STOP_MINUTES)", last_active,
                        warn=left <= timedelta(minutes=CHECK_EVERY_MIN))


# --- the edge ---------------------------------------------------------------------------------------------------


def boot_time(stat: Path = Path("/proc/stat")) -> Optional[datetime]:
    for line in stat.read_text().splitlines():
        if line.startswith("btime "):
            return datetime.fromtimestamp(int(line.split()[1]), timezone.utc)
    return None


def _read_last_active(path: Path) -> Optional[datetime]:
    try:
        text = json.loads(path.read_text())["last_active"]
        return datetime.fromisoformat(text) if text else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_last_active(path: Path, moment: Optional[datetime]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps({"last_active": moment.isoformat() if moment else None}) + "\n")
    os.replace(temporary, path)


def idle_check(system: "SystemConfig", *, engine: Optional["Engine"] = None,
               store: Optional["RunStateStore"] = None, idle_state: Optional[Path] = None,
               ready_marker: Optional[Path] = None, now: Optional[datetime] = None,
               booted: Optional[datetime] = None, stop_host: Optional[Callable[[str], object]] = None,
               host_factory: Optional["HostFactory"] = None, dry_run: bool = False,
               warn: Optional[Say] = None, say: Say = print) -> IdleDecision:
    """`deepracer idle-check`: reconcile the run state, decide, remember the activity, power off if due.
    `stop_host` defaults to `power_off`; `warn` to `wall` (a note to logged-in users)."""
    from session.engine.containers import Engine, EngineError
    from session.host.first_boot import default_ready_marker
    from session.lifecycle.limits import BACKSTOP_GRACE_S, enforce

    idle_state = idle_state if idle_state is not None else default_idle_state()
    from session.lifecycle.resume import ENDED, RUNNING, TIME_LIMIT, ResumeError, RunStateStore, mark_stopped

    engine = engine or Engine()
    store = store or RunStateStore()
    marker = ready_marker or default_ready_marker()
    moment = now or datetime.now(timezone.utc)
    try:
        state = store.read()  # before the containers: a run `train` records meanwhile has its containers listed
    except ResumeError as error:
        say(f"run state: {error}")
        state = None
    try:
        containers = engine.list()
    except EngineError as error:
        # Nothing trains without Docker; the last activity a working check saw still counts.
        say(f"idle check: {error}; counting no container as active")
        containers = []
    try:  # e-mails a run that finished by itself or stalls (session.lifecycle.watchdog), before it is recorded as ended
        from session.lifecycle.watchdog import check  # it lists the containers itself: a Docker failure is no finish

        dry_run or check(system, state=state, engine=engine, store=store, now=moment, say=say)
    except Exception as error:  # noqa: BLE001 - a notification never stops the idle check
        say(f"watchdog: {error}")

    try:
        if state is not None and state.status == RUNNING:
            ours = [c for c in active_containers(containers) if c.run == str(state.run_id) and c.role != "evaluation"]
            if not ours:
                mark_stopped(store, state.run_id, status=ENDED, token=state.token, now=moment,
                             reason="its containers stopped without `deepracer stop`")
                say(f"run state: {state.prefix} is not running any more; recorded as ended")
            elif not dry_run and enforce(store, now=lambda: moment, grace_s=BACKSTOP_GRACE_S,
                                         host_factory=host_factory, say=say) is not None:
                containers = engine.list()
        state = store.read()
    except ResumeError as error:
        say(f"run state: {error}")
        state = None
    limit_power_off = state is not None and state.status == TIME_LIMIT and state.power_off

    ready = marker.is_file()
    since_ready = datetime.fromtimestamp(marker.stat().st_mtime, timezone.utc) if ready else None
    booted = booted or boot_time()
    since = max((m for m in (booted, since_ready) if m is not None), default=None)
    decision = decide(active=[c.name for c in active_containers(containers)], now=moment,
                      last_active=_read_last_active(idle_state), since=since,
                      idle_minutes=system.idle_stop_minutes, ready=ready, time_limit_power_off=limit_power_off)
    say(f"idle check: {decision.reason}" + ("; powering off" if decision.power_off else ""))
    if dry_run:
        return decision
    if decision.last_active is not None:
        try:
            _write_last_active(idle_state, decision.last_active)
        except OSError as error:
            say(f"idle check: cannot remember the last activity in {idle_state}: {error.strerror or error}")
    if decision.warn:
        (warn or _wall)(f"deepracer: this host powers off within {CHECK_EVERY_MIN} minutes: {decision.reason}. "
                        "Start training or evaluation to keep it, or set DR_IDLE_STOP_MINUTES=0 in system.env.")
    if decision.power_off:
        if limit_power_off:
            # Done once: the next boot must not power off again for the same run.
            store.transition(lambda current: current.token == state.token,  # type: ignore[union-attr]  # limit_power_off: a state
                             lambda current: replace(current, power_off=False))
        if stop_host is not None:
            stop_host(system.cloud)
        else:
            _keep_models(system, say)
            from session.lifecycle.notify import notify

            notify(system, "idle stop", "host", f"{decision.reason}; the host powers off", say=say)
            power_off(system.cloud, say=say)
    return decision


def _keep_models(system: "SystemConfig", say: Say) -> None:
    """Azure: deallocation empties the temp disk under MinIO; every prefix goes to Blob first. A failed copy is
    said loudly but does not keep an idle VM running (and billing) forever."""
    keeper = Keeper(system, storage_for(system))
    if not keeper.active:
        return
    try:
        keeper.keep_everything(say=say)
    except Exception as error:  # noqa: BLE001 - any failure: power off anyway, with the reason in the journal
        say(f"WARNING: idle check: could not copy the models to Blob before powering off: {error}")


def _wall(message: str) -> None:
    try:
        subprocess.run(["wall", message], check=False, timeout=10, capture_output=True)
    except (OSError, subprocess.SubprocessError):
        pass


# --- powering off ------------------------------------------------------------------------------------------------


class AzureVm:
    """This VM, as its managed identity sees it through IMDS and Azure Resource Manager."""

    def __init__(self, imds: str = IMDS, arm: str = ARM, timeout: float = 10.0) -> None:
        self.imds, self.arm, self.timeout = imds.rstrip("/"), arm.rstrip("/"), timeout

    def _imds_json(self, path: str) -> dict:
        status, body = metadata_request(f"{self.imds}{path}", headers={"Metadata": "true"}, timeout=self.timeout)
        if status != 200:
            raise PowerOffError(f"IMDS {path.split('?')[0]} answered HTTP {status}: {_excerpt(body)}")
        return json.loads(body)

    def token(self) -> str:
        resource = urllib.parse.quote(f"{ARM}/", safe="")
        return self._imds_json(f"/metadata/identity/oauth2/token?api-version=2018-02-01&resource={resource}"
                               )["access_token"]

    def resource_id(self) -> str:
        compute = self._imds_json("/metadata/instance/compute?api-version=2021-02-01")
        return compute.get("resourceId") or (
            f"/subscriptions/{compute['subscriptionId']}/resourceGroups/{compute['resourceGroupName']}"
            f"/providers/Microsoft.Compute/virtualMachines/{compute['name']}")

    def deallocate(self) -> None:
        """Asks ARM to deallocate this VM (202: it goes down within a minute or so)."""
        try:
            url = f"{self.arm}{self.resource_id()}/deallocate?api-version={ARM_API_VERSION}"
            status, body = metadata_request(url, method="POST", body=b"", timeout=self.timeout,
                                            headers={"Authorization": f"Bearer {self.token()}"})
        except (NoticeError, ValueError, KeyError) as error:
            raise PowerOffError(str(error)) from None
        if status not in (200, 202):
            hint = (f"; the VM's managed identity needs {DEALLOCATE_ACTION} on the VM"
                    if status in (401, 403) else "")
            raise PowerOffError(f"deallocate answered HTTP {status}: {_excerpt(body)}{hint}")


def _excerpt(body: bytes) -> str:
    return " ".join(body[:300].decode("utf-8", "replace").split())


def power_off(cloud: str, *, say: Say = print, azure: Optional[AzureVm] = None,
              run: Callable[[Sequence[str]], object] = lambda command: subprocess.run(list(command), check=False)
              ) -> str:
    """Stops this host: Azure deallocates, everything else powers off. Returns what was done."""
    if cloud == "azure":
        try:
            (azure or AzureVm()).deallocate()
            say("asked Azure to deallocate this VM (compute billing stops; the disks stay)")
            return "deallocate"
        except PowerOffError as error:
            say(f"WARNING: Azure did not deallocate this VM ({error}). Powering off from inside instead: the VM "
                "stays ALLOCATED AND BILLED at its full hourly price until you deallocate it "
                "(`az vm deallocate` or the portal's Stop).")
    run(["systemctl", "poweroff"])
    return "poweroff"
