"""The run state machine as a table: every status against every event, read from the documented life cycle
(session/run/state.py's docstring), not from TRANSITIONS; and the store changes a record only through it."""

from __future__ import annotations

import ast
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from session.run.state import (
    Event,
    RunState,
    RunStateStore,
    Status,
    TransitionRefused,
    advance,
    mark_stopped,
    training_between,
)

S, E = Status, Event
START = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)

# What each event does from each status; a status missing from an event's row refuses it.
EXPECTED = {
    E.START: {None: S.STARTING, **{s: S.STARTING for s in S}},
    E.STARTED: {S.STARTING: S.RUNNING},
    E.STOP: {S.RUNNING: S.STOPPED, S.STARTING: S.STOPPED},
    # every status in which containers may run (or are about to) is interrupted by a notice, and resumable
    E.NOTICE: {S.RUNNING: S.INTERRUPTED, S.STARTING: S.INTERRUPTED, S.RESUMING: S.INTERRUPTED},
    E.TIME_UP: {S.RUNNING: S.TIME_LIMIT},
    E.END: {S.RUNNING: S.ENDED, S.STARTING: S.ENDED},
    E.RESUME: {S.INTERRUPTED: S.RESUMING},
    E.FORCE_RESUME: {s: S.RESUMING for s in S},
    E.RESUME_FAILED: {S.RESUMING: S.RESUME_FAILED, S.STARTING: S.RESUME_FAILED},
    E.GIVE_BACK: {S.RESUMING: "claimed_from"},
    E.NOTE: {s: s for s in S},
    # a swarm node with workers lost past its grace: stopped, not resumed (the trainer cannot go on without them)
    E.NODE_LOST: {S.RUNNING: S.NODE_LOST, S.STARTING: S.NODE_LOST},
}


def state(status: Status, **changes) -> RunState:
    values = dict(run_id=3, prefix="rl-3", run_env="/r/run.env", system_env="/s/system.env", started=START)
    return RunState(status=status, **{**values, **changes})


def test_the_table_names_every_event():
    assert set(EXPECTED) == set(Event)


@pytest.mark.parametrize("event", list(Event), ids=lambda e: e.value)
@pytest.mark.parametrize("status", [None, *Status], ids=lambda s: s.value if s else "nothing")
def test_each_status_takes_each_event_as_the_life_cycle_says(status, event):
    expected = EXPECTED[event].get(status)
    before = state(status, claimed_from=S.INTERRUPTED if status is S.RESUMING else None) if status else None
    changes = dict(run_id=4, prefix="rl-4", run_env="/r/run.env", system_env="/s/system.env",
                   started=START) if event is E.START else {}
    if expected is None:
        with pytest.raises(TransitionRefused, match=f"cannot take the event {event.value}"):
            advance(before, event, **changes)
        return
    after = advance(before, event, **changes)
    assert after.status is (before.claimed_from if expected == "claimed_from" else expected)


def test_a_resume_remembers_what_it_claimed_and_gives_it_back():
    for claimed in (S.INTERRUPTED, S.STOPPED, S.RESUMING):
        event = E.RESUME if claimed is S.INTERRUPTED else E.FORCE_RESUME
        resuming = advance(state(claimed), event)
        assert (resuming.status, resuming.claimed_from) == (S.RESUMING, claimed)
        back = advance(resuming, E.GIVE_BACK)
        assert (back.status, back.claimed_from) == (claimed, None)
    failed = advance(advance(state(S.INTERRUPTED), E.RESUME), E.RESUME_FAILED, message="boom")
    assert (failed.status, failed.claimed_from, failed.message) == (S.RESUME_FAILED, None, "boom")


def test_the_status_is_the_tables_to_set():
    with pytest.raises(ValueError, match="the status is the table's to set"):
        advance(state(S.RUNNING), E.NOTE, status=S.STOPPED)


def test_the_store_applies_only_what_the_status_accepts(tmp_path):
    store = RunStateStore(tmp_path / "state.json")
    assert store.apply(E.STOP) is None  # nothing recorded
    starting = store.start(run_id=3, prefix="rl-3", run_env="/r", system_env="/s", started=START)
    assert starting is not None and starting.status is S.STARTING
    assert store.apply(E.STARTED).status is S.RUNNING
    assert store.apply(E.STARTED) is None  # once
    stopped = mark_stopped(store, 3, now=START + timedelta(minutes=5))
    assert stopped is not None and stopped.status is S.STOPPED and store.read() == stopped
    assert store.apply(E.NOTICE, reason="spot") is None  # a stopped run is not interrupted afterwards
    assert mark_stopped(store, 3, event=E.END) is None
    assert store.read() == stopped
    assert store.apply(E.NOTE, message="noted").message == "noted"


def test_the_file_holds_the_status_as_text_and_reads_back(tmp_path):
    store = RunStateStore(tmp_path / "state.json")
    written = advance(state(S.INTERRUPTED), E.RESUME)
    store.write(written)
    text = (tmp_path / "state.json").read_text()
    assert '"status": "resuming"' in text and '"claimed_from": "interrupted"' in text
    assert store.read() == written


def test_nothing_outside_the_state_module_sets_a_status():
    # `replace(state, status=...)` or `RunState(status=...)` anywhere else would go around the table.
    session = Path(__file__).resolve().parents[3] / "session"
    found = []
    for path in session.rglob("*.py"):
        if path.name == "state.py" and path.parent.name == "run":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and any(k.arg in ("status", "claimed_from") for k in node.keywords):
                name = ast.unparse(node.func)
                if name.endswith(("replace", "RunState", "apply", "advance")):
                    found.append(f"{path.relative_to(session)}:{node.lineno} {name}")
    assert found == []


def test_a_start_can_be_made_conditional_on_what_is_recorded(tmp_path):
    # a resume records its new part only while its claim stands: a notice during the resume comes first
    store = RunStateStore(tmp_path / "state.json")
    interrupted = advance(state(S.RUNNING), E.NOTICE)
    store.write(interrupted)
    claimed = lambda current: current is not None and current.status is S.RESUMING  # noqa: E731
    assert store.start(run_id=4, prefix="rl-4", run_env="/r", system_env="/s", started=START, when=claimed) is None
    assert store.read() == interrupted
    store.write(advance(interrupted, E.RESUME))
    new = store.start(run_id=4, prefix="rl-4", run_env="/r", system_env="/s", started=START, when=claimed)
    assert new is not None and (new.status, new.prefix) == (S.STARTING, "rl-4") and store.read() == new


def test_a_new_start_keeps_the_record_it_replaces_in_the_history(tmp_path):
    store = RunStateStore(tmp_path / "state.json")
    assert store.history() == []
    first = store.start(run_id=3, prefix="rl-3", run_env="/r", system_env="/s", started=START, running=True)
    assert store.history() == []  # nothing was replaced
    # Never stopped (the host went down): the history ends it where the next part started.
    second = store.start(run_id=3, prefix="rl-4", run_env="/r", system_env="/s", started=START + timedelta(hours=2),
                         running=True)
    stopped = store.apply(E.STOP, stopped=START + timedelta(hours=3))
    store.start(run_id=5, prefix="rl-5", run_env="/r", system_env="/s", started=START + timedelta(hours=4))
    assert store.history_path == tmp_path / "state.history.jsonl"
    assert [(p.prefix, p.status, p.started, p.stopped) for p in store.history()] == [
        ("rl-3", S.RUNNING, first.started, START + timedelta(hours=2)),
        ("rl-4", S.STOPPED, second.started, stopped.stopped)]


def test_training_between_counts_each_part_once_and_only_inside_the_window():
    month = datetime(2026, 12, 1, tzinfo=timezone.utc)
    parts = [
        # November into December: only December's 2 hours count
        state(S.STOPPED, started=month - timedelta(hours=1), stopped=month + timedelta(hours=2)),
        # a resumed part carries its earlier parts' 5400 s in trained_s: not counted again
        state(S.STOPPED, started=START, stopped=START + timedelta(minutes=30), trained_s=5400.0),
        # running now (no stop): until the window's end
        state(S.RUNNING, started=START + timedelta(hours=1)),
        state(S.STOPPED, started=month - timedelta(days=2), stopped=month - timedelta(days=1)),  # November only
    ]
    end = START + timedelta(hours=1, minutes=15)
    assert training_between(parts, month, end) == 2 * 3600 + 30 * 60 + 15 * 60
    assert training_between([], month, end) == 0.0
