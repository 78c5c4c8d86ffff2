"""The grace a lost swarm node gets before the swarm watch stops its run (pure: session.run.node_loss.due), and the
memory it keeps between ticks. The real swarm's side is in test_swarm_training.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from session.run.node_loss import GRACE, due, pending, read_memory, write_memory

T0 = datetime(2026, 12, 6, 16, 0, tzinfo=timezone.utc)
LOST = {"n2": ("ip-10-0-1-7", (2, 3))}


def test_a_node_is_due_once_it_has_been_seen_down_for_the_grace():
    past, within, memory = due(LOST, {}, "run@1", T0)
    assert past == [] and [n.since for n in within] == [T0]
    past, within, memory = due(LOST, memory, "run@1", T0 + GRACE - timedelta(seconds=1))
    assert past == [] and len(within) == 1
    past, within, _ = due(LOST, memory, "run@1", T0 + GRACE)
    assert [(n.hostname, n.workers, n.since) for n in past] == [("ip-10-0-1-7", (2, 3), T0)] and within == []


def test_a_node_back_within_the_grace_is_forgotten_and_its_next_loss_counts_afresh():
    _, _, memory = due(LOST, {}, "run@1", T0)
    _, _, memory = due({}, memory, "run@1", T0 + timedelta(seconds=60))  # a blip: it answered again
    assert memory["nodes"] == {}
    past, within, _ = due(LOST, memory, "run@1", T0 + GRACE)
    assert past == [] and [n.since for n in within] == [T0 + GRACE]


def test_another_run_parts_memory_does_not_count():
    _, _, memory = due(LOST, {}, "run@1", T0)
    past, within, _ = due(LOST, memory, "run@2", T0 + GRACE)
    assert past == [] and [n.since for n in within] == [T0 + GRACE]


def test_the_memory_file_round_trips_and_pending_reads_it_for_its_run_only(tmp_path):
    path = tmp_path / "nodes-down.json"
    _, _, memory = due(LOST, {}, "run@1", T0)
    write_memory(path, memory)
    assert read_memory(path) == memory
    shown = pending(path, "run@1")
    assert [(n.node_id, n.hostname, n.workers, n.since) for n in shown] == [("n2", "ip-10-0-1-7", (2, 3), T0)]
    assert "ip-10-0-1-7 (n2; workers 2, 3)" in shown[0].describe()
    assert pending(path, "run@2") == [] and pending(tmp_path / "missing.json", "run@1") == []
