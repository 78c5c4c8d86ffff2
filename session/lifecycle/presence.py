"""Someone at work on this host: what the idle stop (session.lifecycle.idle) counts as use besides training.

Four probes, each a plain function of what it reads (injectable for tests), each answering `Presence`s: what
was used and when last (its last input; now for a command that runs):

- **logind sessions** (`loginctl list-sessions`, then `loginctl show-session ID -p ...`): a session's
  `IdleSinceHint` (microseconds since the epoch) is its terminal's last input for a text login (SSH); a graphical
  one that is not idle (`IdleHint=no`) is in use now. A session without a terminal has no input to count.
- **terminals**: the access time of each `/dev/pts/N` is its last input (the kernel updates it on reads); this
  covers Session Manager shells, tmux and editors' terminals that logind does not see.
- **Session Manager sessions**: each `ssm-session-worker` process, with the last input of the terminal its
  shell runs on.
- **`deepracer` commands** that run (`deepracer logs --follow`, `watch`, an export ...), from /proc: not the
  ones our own units run (spot watch, idle check, blob sync, resume: their cgroup is a deepracer-* service),
  nor the caller and its parents.

A probe that cannot look (no loginctl, no /proc) finds nothing; the idle stop then counts what the others find.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

PROC = Path("/proc")
PTS = Path("/dev/pts")
LOGIND_PROPERTIES = ("Id", "Name", "TTY", "Remote", "Type", "Class", "State", "IdleHint", "IdleSinceHint")
GRAPHICAL = ("x11", "wayland", "mir")
OUR_UNITS = "/system.slice/deepracer-"  # the cgroup of our own units' processes
# What only units run, and the dashboard: a server left open (in tmux, say) is nobody at work, and would keep an
# idle host up for ever (someone who watches it through a port forward has no terminal to count either).
SERVICE_COMMANDS = ("idle-check", "spot-watch", "dashboard")
PTS_MAJORS = range(136, 144)  # Unix98 pseudo-terminals (devices.txt)


@dataclass(frozen=True)
class Presence:
    what: str  # "SSH login session 4 of ubuntu (pts/0)", "`deepracer logs` (pid 812)"
    last: datetime  # its last input, UTC


Run = Callable[[Sequence[str]], str]  # a command's standard output; "" when it cannot run or fails


def _run(command: Sequence[str]) -> str:
    try:
        result = subprocess.run(list(command), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout if result.returncode == 0 else ""


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def properties(text: str) -> dict[str, str]:
    """`loginctl show-session` / `systemctl show` output: one `Key=Value` a line."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def logind_sessions(now: datetime, run: Run = _run) -> list[Presence]:
    listing = run(["loginctl", "list-sessions", "--no-legend", "--no-pager"])
    found = []
    for session in (line.split()[0] for line in listing.splitlines() if line.strip()):
        shown = properties(run(["loginctl", "show-session", session, "--no-pager",
                                *(f"--property={name}" for name in LOGIND_PROPERTIES)]))
        if not shown.get("Class", "user").startswith("user") or shown.get("State") == "closing":
            continue  # a greeter, a user manager; or processes left behind after a logout
        tty = shown.get("TTY", "")
        what = (f"{'SSH ' if shown.get('Remote') == 'yes' else ''}login session {session} of "
                f"{shown.get('Name', '?')}" + (f" ({tty})" if tty else ""))
        since_us = int(shown.get("IdleSinceHint") or 0)
        if shown.get("Type") in GRAPHICAL and shown.get("IdleHint") == "no":
            found.append(Presence(what, now))
        elif since_us > 0:
            found.append(Presence(what, _utc(since_us / 1e6)))
    return found


def _pts_input(pts: Path, number: int) -> Optional[datetime]:
    try:
        return _utc((pts / str(number)).stat().st_atime)
    except OSError:
        return None


def terminals(pts: Path = PTS) -> list[Presence]:
    found = []
    try:
        entries = sorted((entry for entry in pts.iterdir() if entry.name.isdigit()), key=lambda e: int(e.name))
    except OSError:
        return []
    for entry in entries:
        try:
            status = entry.stat()
        except OSError:
            continue
        try:
            owner = pwd.getpwuid(status.st_uid).pw_name
        except KeyError:
            owner = str(status.st_uid)
        found.append(Presence(f"terminal pts/{entry.name} of {owner}", _utc(status.st_atime)))
    return found


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    tty_nr: int
    argv: list[str]
    cgroup: str


def processes(proc: Path = PROC) -> dict[int, Process]:
    """The process table, as /proc shows it (a process that ends meanwhile is left out)."""
    table = {}
    for folder in proc.iterdir():
        if not folder.name.isdigit():
            continue
        try:
            stat = (folder / "stat").read_text()
            argv = (folder / "cmdline").read_bytes().decode("utf-8", "replace").split("\0")
            cgroup = (folder / "cgroup").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp session tty_nr ...
        table[int(folder.name)] = Process(int(folder.name), int(fields[1]), int(fields[4]),
                                          [a for a in argv if a], cgroup)
    return table


def pts_number(tty_nr: int) -> Optional[int]:
    """The N of /dev/pts/N a controlling terminal (stat's tty_nr) is, or None."""
    major, minor = (tty_nr >> 8) & 0xFFF, (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    return (major - PTS_MAJORS.start) * 256 + minor if major in PTS_MAJORS else None


def _descendants(table: dict[int, Process], root: int) -> Iterable[Process]:
    children: dict[int, list[Process]] = {}
    for process in table.values():
        children.setdefault(process.ppid, []).append(process)
    pending = list(children.get(root, []))
    while pending:
        process = pending.pop()
        yield process
        pending.extend(children.get(process.pid, []))


def ssm_sessions(table: dict[int, Process], pts: Path = PTS) -> list[Presence]:
    found = []
    for worker in table.values():
        if not worker.argv or Path(worker.argv[0]).name != "ssm-session-worker":
            continue
        session = worker.argv[1] if len(worker.argv) > 1 else str(worker.pid)
        numbers = {n for n in (pts_number(p.tty_nr) for p in _descendants(table, worker.pid)) if n is not None}
        inputs = [(moment, n) for n in numbers if (moment := _pts_input(pts, n)) is not None]
        if inputs:  # a port forwarding has no terminal, and no input to count
            moment, number = max(inputs)
            found.append(Presence(f"Session Manager session {session} (pts/{number})", moment))
    return found


def deepracer_command(argv: Sequence[str]) -> Optional[str]:
    """`deepracer CMD ...` (or its script under a python, or `python -m session CMD`): CMD; else None."""
    names = [Path(arg).name for arg in argv[:2]]
    if names[:1] == ["deepracer"]:
        rest = argv[1:]
    elif len(names) == 2 and names[0].startswith("python") and names[1] == "deepracer":
        rest = argv[2:]
    elif names[:1] and names[0].startswith("python") and list(argv[1:3]) == ["-m", "session"]:
        rest = argv[3:]
    else:
        return None
    return next((arg for arg in rest if not arg.startswith("-")), "")


def deepracer_commands(table: dict[int, Process], now: datetime, own: Optional[int] = None) -> list[Presence]:
    mine = set()
    pid: Optional[int] = own if own is not None else os.getpid()
    while pid and pid in table and pid not in mine:  # the caller (the idle check) and its parents
        mine.add(pid)
        pid = table[pid].ppid
    mine.add(own if own is not None else os.getpid())
    found = []
    for process in sorted(table.values(), key=lambda p: p.pid):
        command = deepracer_command(process.argv)
        if command is None or process.pid in mine or command in SERVICE_COMMANDS or OUR_UNITS in process.cgroup:
            continue
        found.append(Presence(f"`{f'deepracer {command}'.strip()}` (pid {process.pid})", now))
    return found


def present(now: datetime, *, run: Run = _run, proc: Path = PROC, pts: Path = PTS,
            own: Optional[int] = None) -> list[Presence]:
    """Everything every probe finds."""
    try:
        table = processes(proc)
    except OSError:
        table = {}
    return [*logind_sessions(now, run), *terminals(pts), *ssm_sessions(table, pts),
            *deepracer_commands(table, now, own)]
