"""The idle stop counts people at work (issue 15, item 8): logins' and terminals' last input, open Session Manager
sessions, running `deepracer` commands, and `deepracer keep-awake`.

The probes read what the host shows, here given in the formats systemd 249-252 (Ubuntu 22.04, Debian 12) and
Linux print them: `loginctl list-sessions --no-legend` (SESSION UID USER SEAT TTY), `loginctl show-session -p
...` (Key=Value, IdleSinceHint in microseconds since the epoch, printed raw), /proc/<pid>/stat, cmdline (NUL
separated) and cgroup (cgroup v2: `0::/path`), and /dev/pts/N whose access time is the last input.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from session.cli.main import main
from session.core.config import load_system_config
from session.lifecycle import idle
from session.lifecycle.idle import decide, idle_check
from session.lifecycle.presence import (
    Presence,
    deepracer_command,
    deepracer_commands,
    logind_sessions,
    present,
    processes,
    pts_number,
    ssm_sessions,
    terminals,
)
from session.run.state import RunState, RunStateStore, Status

NOW = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
BOOT = NOW - timedelta(hours=2)


def us(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1_000_000))


LIST_SESSIONS = """\
      3 1000 ubuntu       pts/0
     12 1000 ubuntu
     15    0 root         pts/1
     c1  113 gdm     seat0 tty1
"""
SHOW_SESSION = {  # `loginctl show-session ID --property=...`, in the order loginctl prints them
    "3": f"Id=3\nName=ubuntu\nTTY=pts/0\nRemote=yes\nType=tty\nClass=user\nState=active\nIdleHint=no\n"
         f"IdleSinceHint={us(NOW - timedelta(minutes=7))}\n",
    "12": "Id=12\nName=ubuntu\nTTY=\nRemote=yes\nType=unspecified\nClass=user\nState=active\nIdleHint=no\n"
          "IdleSinceHint=0\n",  # `ssh host command`: no terminal, no input known
    "15": f"Id=15\nName=root\nTTY=pts/1\nRemote=yes\nType=tty\nClass=user\nState=closing\nIdleHint=no\n"
          f"IdleSinceHint={us(NOW - timedelta(minutes=1))}\n",  # logged out, processes left behind
    "c1": f"Id=c1\nName=gdm\nTTY=tty1\nRemote=no\nType=x11\nClass=greeter\nState=online\nIdleHint=no\n"
          f"IdleSinceHint={us(NOW)}\n",
}


def loginctl(command):
    assert command[0] == "loginctl"
    if command[1] == "list-sessions":
        return LIST_SESSIONS
    assert command[1] == "show-session" and "--property=IdleSinceHint" in command
    return SHOW_SESSION[command[2]]


def test_a_login_counts_from_its_terminals_last_input():
    assert logind_sessions(NOW, loginctl) == [
        Presence("SSH login session 3 of ubuntu (pts/0)", NOW - timedelta(minutes=7))]
    assert logind_sessions(NOW, lambda _: "") == []  # no loginctl, no logind


def test_a_terminal_counts_from_its_last_input(tmp_path: Path):
    pts = tmp_path / "pts"
    pts.mkdir()
    for name, minutes in (("0", 3), ("4", 40), ("ptmx", 0)):
        (pts / name).touch()
        moment = (NOW - timedelta(minutes=minutes)).timestamp()
        os.utime(pts / name, (moment, moment + 1))  # atime: input; mtime: output
    owner = __import__("pwd").getpwuid(os.getuid()).pw_name
    assert terminals(pts) == [Presence(f"terminal pts/0 of {owner}", NOW - timedelta(minutes=3)),
                              Presence(f"terminal pts/4 of {owner}", NOW - timedelta(minutes=40))]
    assert terminals(tmp_path / "none") == []


def process(proc: Path, pid: int, ppid: int, argv: list[str], tty_nr: int = 0,
            cgroup: str = "0::/user.slice/user-1000.slice/session-3.scope") -> None:
    folder = proc / str(pid)
    folder.mkdir()
    comm = Path(argv[0]).name[:15]
    (folder / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} {tty_nr} -1 4194560 1031 0 0 0 2 1 0 0 20 0 "
                                 "1 0 1400126 9162752 1292 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 "
                                 "0 0\n")
    (folder / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (folder / "cgroup").write_text(cgroup + "\n")


@pytest.fixture
def host(tmp_path: Path):
    """A process table and terminals as on an AWS host with a Session Manager shell, an SSH login and our units."""
    proc, pts = tmp_path / "proc", tmp_path / "pts"
    proc.mkdir()
    pts.mkdir()
    for number, minutes in ((0, 9), (1, 2)):
        (pts / str(number)).touch()
        moment = (NOW - timedelta(minutes=minutes)).timestamp()
        os.utime(pts / str(number), (moment, moment))
    venv = "/opt/deepracer/venv/bin"
    process(proc, 1, 0, ["/sbin/init"], cgroup="0::/init.scope")
    process(proc, 700, 1, ["/usr/bin/amazon-ssm-agent"], cgroup="0::/system.slice/snap.amazon-ssm-agent.service")
    process(proc, 810, 700, ["/usr/bin/ssm-session-worker", "ubuntu-0a1b2c3d4e5f67890", "i-0123456789abcdef0"],
            cgroup="0::/system.slice/snap.amazon-ssm-agent.service")
    process(proc, 811, 810, ["sh"], tty_nr=(136 << 8) | 1, cgroup="0::/system.slice/snap.amazon-ssm-agent.service")
    process(proc, 812, 811, [f"{venv}/python", f"{venv}/deepracer", "logs", "trainer", "--follow"],
            tty_nr=(136 << 8) | 1, cgroup="0::/system.slice/snap.amazon-ssm-agent.service")
    process(proc, 900, 1, ["/usr/bin/ssm-session-worker", "ubuntu-port-forward", "i-0123456789abcdef0"],
            cgroup="0::/system.slice/snap.amazon-ssm-agent.service")  # port forwarding: no terminal
    process(proc, 950, 1, [f"{venv}/python", f"{venv}/deepracer", "spot-watch"],
            cgroup="0::/system.slice/deepracer-spot-watch.service")
    process(proc, 960, 1, ["/usr/sbin/runuser", "-u", "ubuntu", "--", f"{venv}/deepracer", "sync-models",
                           "--running"], cgroup="0::/system.slice/deepracer-blob-sync.service")
    process(proc, 961, 960, [f"{venv}/python", f"{venv}/deepracer", "sync-models", "--running"],
            cgroup="0::/system.slice/deepracer-blob-sync.service")
    process(proc, 970, 1, [f"{venv}/python", "-m", "session.lifecycle.limits", "--state", "s", "--token", "t"],
            cgroup="0::/user.slice/user-1000.slice/user@1000.service/app.slice/deepracer-time-limit-0.service")
    process(proc, 1000, 1, ["/usr/bin/python3", "-m", "session", "--quiet", "models", "export", "m-1"],
            cgroup="0::/user.slice/user-1000.slice/session-3.scope")  # `nohup ... &`: no terminal any more
    process(proc, 1100, 1, [f"{venv}/python", f"{venv}/deepracer", "idle-check"],
            cgroup="0::/system.slice/deepracer-idle.service")  # the caller
    return proc, pts


def test_session_manager_sessions_count_from_their_shells_last_input(host):
    proc, pts = host
    assert pts_number((136 << 8) | 1) == 1 and pts_number((137 << 8) | 4) == 260 and pts_number(0) is None
    assert ssm_sessions(processes(proc), pts) == [
        Presence("Session Manager session ubuntu-0a1b2c3d4e5f67890 (pts/1)", NOW - timedelta(minutes=2))]


def test_running_deepracer_commands_count_but_not_our_units_nor_the_caller(host):
    proc, _ = host
    assert deepracer_commands(processes(proc), NOW, own=1100) == [
        Presence("`deepracer logs` (pid 812)", NOW), Presence("`deepracer models` (pid 1000)", NOW)]
    assert deepracer_command(["deepracer"]) == "" and deepracer_command(["/usr/bin/bash", "deepracer"]) is None


def test_present_gathers_every_probe(host):
    proc, pts = host
    found = present(NOW, run=loginctl, proc=proc, pts=pts, own=1100)
    assert [p.what for p in found] == [
        "SSH login session 3 of ubuntu (pts/0)", f"terminal pts/0 of {found[1].what.split()[-1]}",
        f"terminal pts/1 of {found[2].what.split()[-1]}", "Session Manager session ubuntu-0a1b2c3d4e5f67890 (pts/1)",
        "`deepracer logs` (pid 812)", "`deepracer models` (pid 1000)"]


# --- the idle rules with people at work -----------------------------------------------------------------------------

def rule(**given):
    return decide(**{"active": [], "now": NOW, "last_active": None, "since": BOOT, "idle_minutes": 30, **given})


def test_recent_input_keeps_the_host_and_counts_as_its_last_activity():
    typing = Presence("terminal pts/0 of ubuntu", NOW - timedelta(minutes=12))
    decision = rule(last_active=NOW - timedelta(hours=1), presence=[typing])
    assert (decision.power_off, decision.last_active, decision.warn) == (False, typing.last, False)
    assert decision.reason == ("idle for 12 min (last use: terminal pts/0 of ubuntu, 12 min ago); powers off after "
                               "30 (DR_IDLE_STOP_MINUTES)")
    stale = Presence("terminal pts/0 of ubuntu", NOW - timedelta(minutes=45))  # a login nobody typed in since
    assert rule(last_active=NOW - timedelta(hours=1), presence=[stale]).power_off


def test_keep_awake_keeps_the_host_until_it_ends():
    kept = rule(last_active=NOW - timedelta(hours=3), keep_awake_until=NOW + timedelta(minutes=1))
    assert (kept.power_off, kept.reason, kept.last_active) == (False, "kept awake until 12:01 UTC "
                                                                      "(`deepracer keep-awake`)", NOW)
    assert rule(last_active=NOW - timedelta(hours=3), keep_awake_until=NOW).power_off  # ended
    assert not rule(time_limit_power_off=True, keep_awake_until=NOW + timedelta(minutes=5)).power_off


def test_a_time_limit_power_off_waits_for_the_person_at_work():
    working = Presence("`deepracer watch` (pid 4)", NOW)
    held = rule(time_limit_power_off=True, idle_minutes=0, presence=[working])
    assert (held.power_off, held.reason) == (False, "training reached its time limit; powering off once nobody "
                                                    "has used the host for 15 min (in use: `deepracer watch` (pid 4), "
                                                    "now)")
    gone = Presence("terminal pts/0 of ubuntu", NOW - timedelta(minutes=16))
    assert rule(time_limit_power_off=True, idle_minutes=0, presence=[gone]).power_off


# --- the idle check and `deepracer keep-awake` ----------------------------------------------------------------------

class NoContainers:
    def list(self, run=None, role=None):
        return []


def idle_at(tmp_path: Path, now: datetime, **options):
    (tmp_path / "system.env").write_text("DR_CLOUD=aws\nDR_SIMAPP_VERSION=6.0.4-gpu\n")
    ready = tmp_path / "ready"
    ready.touch()
    os.utime(ready, (BOOT.timestamp(), BOOT.timestamp()))
    (tmp_path / "run").mkdir(exist_ok=True)
    powered: list[str] = []
    decision = idle_check(load_system_config(tmp_path / "system.env", environ={}), engine=NoContainers(),
                          store=RunStateStore(tmp_path / "run" / "state.json"), idle_state=tmp_path / "idle.json",
                          ready_marker=ready, now=now, booted=BOOT, stop_host=powered.append, warn=[].append,
                          say=[].append, keep_awake_file=tmp_path / "keep-awake.json", **options)
    return decision, powered


def test_the_idle_check_counts_people_at_work(tmp_path: Path):
    at_work = [Presence("SSH login session 3 of ubuntu (pts/0)", NOW - timedelta(minutes=4))]
    decision, powered = idle_at(tmp_path, NOW, presence=lambda now: at_work)
    assert not decision.power_off and powered == []
    decision, powered = idle_at(tmp_path, NOW + timedelta(minutes=34), presence=lambda now: [])  # they left
    assert decision.power_off and powered == ["aws"]


def test_the_idle_check_honours_keep_awake(tmp_path: Path):
    said: list[str] = []
    until = idle.keep_awake(90, path=tmp_path / "keep-awake.json", now=NOW, say=said.append)
    assert until == NOW + timedelta(minutes=90) == idle.read_keep_awake(tmp_path / "keep-awake.json")
    assert said == ["this host stays up until 2026-03-01 13:30 UTC (90 min) whatever the idle auto-stop finds; "
                    "`deepracer keep-awake 0` ends it sooner"]
    decision, powered = idle_at(tmp_path, NOW + timedelta(minutes=89), presence=lambda now: [])
    assert not decision.power_off and powered == []
    idle.keep_awake(0, path=tmp_path / "keep-awake.json", now=NOW, say=said.append)
    assert idle.read_keep_awake(tmp_path / "keep-awake.json") is None
    decision, powered = idle_at(tmp_path, NOW + timedelta(minutes=89 + 30), presence=lambda now: [])
    assert decision.power_off and powered == ["aws"]


def test_keep_awake_on_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.setenv("DR_KEEP_AWAKE", str(tmp_path / "keep-awake.json"))
    before = datetime.now(timezone.utc)
    assert main(["keep-awake"]) == 0
    until = idle.read_keep_awake(tmp_path / "keep-awake.json")
    assert until is not None and timedelta(minutes=60) <= until - before < timedelta(minutes=61)
    assert "stays up until" in capsys.readouterr().out
    assert main(["keep-awake", "0"]) == 0 and not (tmp_path / "keep-awake.json").exists()
    assert main(["keep-awake", "-5"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "deepracer: keep-awake: expected 0 to 1440 minutes (a day), got -5"
    monkeypatch.setenv("DR_KEEP_AWAKE", str(tmp_path / "no-such-folder" / "keep-awake.json"))
    assert main(["keep-awake", "10"]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_the_idle_check_holds_a_time_limit_power_off_while_someone_works(tmp_path: Path):
    # the run state's time-limit power-off, held back by someone at work, then done once they left
    (tmp_path / "run").mkdir()
    store = RunStateStore(tmp_path / "run" / "state.json")
    store.write(RunState(status=Status.TIME_LIMIT, run_id=0, prefix="m", run_env="/r", system_env="/s",
                         started=NOW - timedelta(hours=1), max_minutes=30, power_off=True))
    decision, powered = idle_at(tmp_path, NOW, presence=lambda now: [Presence("`deepracer watch` (pid 4)", now)])
    assert not decision.power_off and powered == [] and store.read().power_off
    decision, powered = idle_at(tmp_path, NOW + timedelta(minutes=20), presence=lambda now: [])
    assert decision.power_off and powered == ["aws"] and not store.read().power_off


def test_a_dashboard_left_open_is_nobody_at_work(tmp_path: Path):
    proc = tmp_path / "proc"
    proc.mkdir()
    venv = "/opt/deepracer/venv/bin"
    process(proc, 1200, 1, [f"{venv}/python", f"{venv}/deepracer", "dashboard", "--port", "8200"],
            cgroup="0::/user.slice/user-1000.slice/session-3.scope")  # started by hand, left in tmux
    process(proc, 1201, 1, [f"{venv}/python", f"{venv}/deepracer", "watch"],
            cgroup="0::/user.slice/user-1000.slice/session-3.scope")
    assert deepracer_commands(processes(proc), NOW, own=1) == [Presence("`deepracer watch` (pid 1201)", NOW)]
