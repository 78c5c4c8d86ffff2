"""The journey's order, the exact command lines it sends, its checks and timings, and that destroy always runs."""

from __future__ import annotations

import pytest

from infra.acceptance.host_commands import RemoteResult
from infra.acceptance.journey import STEPS, Journey, Outcome
from tests.infra.acceptance.fakes import OUTPUTS, PREFIX, STACK, FakeModels, FakeStack, World, digest, ok

STATUS = ("sudo -i -u ubuntu deepracer status --json --progress > /tmp/deepracer-acceptance-status.json "
          "&& python3 -c ")
HOST_STEPS = ("doctor", "validate", "train", "evaluate", "car-package", "stop")


def run(world: World, **options) -> Outcome:
    lines: list[str] = []
    options.setdefault("say", lines.append)
    return Journey(world.cloud(), clock=world.clock, sleep=world.clock.sleep, **options).run()


def table(outcome: Outcome) -> list[tuple[str, str]]:
    return [(r.step, r.result) for r in outcome.results]


def test_a_passing_journey_runs_every_step_in_order_with_these_command_lines():
    world = World()
    outcome = run(world)

    assert table(outcome) == [(step, "ok") for step in STEPS]
    assert outcome.passed
    status = [c for c in world.calls if c.startswith(f"host: {STATUS}")]
    assert len(status) == 1 and status[0].endswith("' /tmp/deepracer-acceptance-status.json")
    assert [c if not c.startswith(f"host: {STATUS}") else "host: <status>" for c in world.calls] == [
        "stack.create",
        "stack.up",
        "host.reach",
        "host: sudo -i -u ubuntu deepracer doctor",
        "host: sudo -i -u ubuntu deepracer validate",
        "host: sudo -i -u ubuntu deepracer train --max-minutes 15",
        "host: <status>",
        "host: sudo -i -u ubuntu deepracer evaluate --clone --checkpoint last --trials 1",
        "host: sudo -i -u ubuntu deepracer models car-package rl-deepracer-0 --checkpoint last --out "
        "/tmp/deepracer-acceptance-car.tar.gz && tar -tzf /tmp/deepracer-acceptance-car.tar.gz",
        "host: sudo -i -u ubuntu deepracer stop",
        f"models.count {PREFIX}",
        "stack.destroy",
        "stack.remove",
        f"models.kept {PREFIX}",
    ]
    assert world.outputs_seen == [OUTPUTS]


def test_each_step_is_timed_and_says_what_it_found():
    outcome = run(World())
    rows = {r.step: r for r in outcome.results}

    assert rows["up"].seconds == 1200
    assert rows["up"].detail == ("host ready; instanceId i-0abc123def4567890, "
                                 "bucket deepracer-acc-aws-20261206-101500-abc123")
    assert rows["doctor"].seconds == 30 and rows["doctor"].detail == "doctor: the host can train"
    assert rows["status"].detail == ("rl-deepracer-0: 2 iteration(s), 60 episode(s), 2 checkpoint(s), "
                                     "last 2_Step-2400.ckpt (poll 1)")
    assert rows["car-package"].detail == ("/tmp/deepracer-acceptance-car.tar.gz: model_metadata.json, "
                                          "agent/model.pb")
    assert rows["models in storage"].detail == "14 object(s) under rl-deepracer-0/model/"
    assert rows["destroy"].seconds == 300 and rows["destroy"].detail == f"stack {STACK} destroyed and removed"
    assert rows["models kept"].detail == "s3://bucket/rl-deepracer-0/model/ still holds 14 object(s)"
    assert outcome.seconds == 1200 + 7 * 30 + 300


def test_the_host_commands_get_their_own_timeouts():
    world = World()
    run(world)
    assert world.channel.timeouts == {"doctor": 900, "validate": 900, "train": 1800, "status": 300,
                                      "evaluate": 2700, "models car-package": 900, "stop": 900}


def test_status_polls_until_an_iteration_has_a_checkpoint():
    world = World()
    world.answers["status"] = [ok(digest(iterations=0, last=None, episodes=0)),
                               ok(digest(iterations=1, last=None, episodes=30)),
                               ok("some warning\n" + digest(iterations=1, last="1_Step-1200.ckpt", episodes=31))]
    outcome = run(world)

    assert outcome.passed
    assert world.clock.sleeps == [60.0, 60.0]
    assert outcome.result_of("status").detail.endswith("last 1_Step-1200.ckpt (poll 3)")


def test_status_gives_up_at_its_deadline_and_still_destroys():
    world = World()
    world.answers["status"] = [ok(digest(iterations=0, last=None, episodes=0))]
    outcome = run(world)

    status = outcome.result_of("status")
    assert status.result == "FAILED"
    assert status.detail == ("no iteration with a checkpoint within 20 min: 0 iteration(s), 0 episode(s), "
                             "0 checkpoint(s), last none")
    # Each poll takes 30 s on the fake host and waits 60 s: the 14th passes the 20 minutes.
    assert 20 * 60 <= status.seconds < 20 * 60 + 90
    assert sum(c.startswith(f"host: {STATUS}") for c in world.calls) == 14 and world.clock.sleeps == [60.0] * 13
    assert table(outcome)[6:] == [("evaluate", "skipped"), ("car-package", "skipped"), ("stop", "skipped"),
                                  ("models in storage", "skipped"), ("destroy", "ok"), ("models kept", "skipped")]
    assert world.calls[-2:] == ["stack.destroy", "stack.remove"]


def test_status_fails_at_once_when_training_has_stopped():
    world = World()
    world.answers["status"] = [ok(digest(iterations=0, last=None, episodes=0, running=False))]
    outcome = run(world)

    assert outcome.result_of("status").detail == ("training is not running: 0 iteration(s), 0 episode(s), "
                                                  "0 checkpoint(s), last none; see `deepracer logs trainer` on "
                                                  "the host")
    assert world.clock.sleeps == []


def test_a_status_without_its_digest_fails_with_what_the_host_said():
    world = World()
    world.answers["status"] = [ok("Traceback ...\nKeyError: 'run'\n")]
    outcome = run(world)
    assert outcome.result_of("status").detail == "status: no digest in the host's answer: KeyError: 'run'"


@pytest.mark.parametrize("failing", HOST_STEPS)
def test_a_failing_host_step_skips_the_rest_and_destroy_still_runs(failing):
    world = World()
    key = "models car-package" if failing == "car-package" else failing
    world.answers[key] = [RemoteResult(2, "some output\n", "deepracer: the reason it failed\n")]
    outcome = run(world)

    position = STEPS.index(failing)
    assert table(outcome)[position] == (failing, "FAILED")
    assert outcome.result_of(failing).detail == "exit 2: deepracer: the reason it failed"
    assert all(result == "skipped" for _, result in table(outcome)[position + 1:STEPS.index("destroy")])
    assert table(outcome)[-2:] == [("destroy", "ok"), ("models kept", "skipped")]
    assert world.calls[-2:] == ["stack.destroy", "stack.remove"]
    assert not outcome.passed


def test_a_command_whose_exit_code_is_unknown_fails():
    world = World()
    world.answers["validate"] = [RemoteResult(None, "half a line", "")]
    outcome = run(world)
    assert outcome.result_of("validate").detail == "no exit code reported: half a line"


def test_a_car_package_without_the_model_fails():
    world = World()
    world.answers["models car-package"] = [ok("model_metadata.json\n")]
    outcome = run(world)
    assert outcome.result_of("car-package").detail == "/tmp/deepracer-acceptance-car.tar.gz lacks agent/model.pb"


def test_a_failed_up_still_destroys_what_it_may_have_created():
    world = World()
    world.stack.up_error = RuntimeError("host i-0abc failed at step gpu-runtime\nmore lines")
    outcome = run(world)

    assert outcome.result_of("up").detail == "RuntimeError: host i-0abc failed at step gpu-runtime more lines"
    assert table(outcome)[1:] == [(step, "skipped") for step in STEPS[1:-2]] + [("destroy", "ok"),
                                                                               ("models kept", "skipped")]
    assert world.calls == ["stack.create", "stack.up", "stack.destroy", "stack.remove"]


def test_a_failed_destroy_keeps_the_stack_for_cleaning_up_by_hand():
    world = World()
    world.stack.destroy_error = RuntimeError("DependencyViolation: the subnet has dependencies")
    outcome = run(world)

    assert outcome.result_of("destroy").result == "FAILED"
    assert outcome.result_of("models kept").detail == "destroy did not succeed"
    assert "stack.remove" not in world.calls
    assert outcome.left_behind and not outcome.passed


def test_keep_leaves_the_stack_up():
    world = World()
    outcome = run(world, keep=True)

    assert outcome.result_of("destroy").result == "kept"
    assert outcome.result_of("models kept").detail == "--keep: nothing was destroyed"
    assert "stack.destroy" not in world.calls and "stack.remove" not in world.calls
    assert outcome.passed and outcome.left_behind


def test_ctrl_c_in_a_step_still_destroys():
    world = World()
    world.answers["train"] = [KeyboardInterrupt()]
    outcome = run(world)

    assert outcome.result_of("train").detail == "interrupted (Ctrl-C)"
    assert outcome.interrupted and not outcome.passed
    assert world.calls[-2:] == ["stack.destroy", "stack.remove"]


def test_no_models_in_storage_fails_and_skips_the_kept_check():
    world = World(models=None)
    world.models = FakeModels(world.calls, count=0)
    outcome = run(world)

    assert outcome.result_of("models in storage").detail == "nothing under rl-deepracer-0/model/ in the lasting storage"
    assert table(outcome)[-2:] == [("destroy", "ok"), ("models kept", "skipped")]


def test_models_gone_after_destroy_fail():
    world = World()
    world.models.kept_error = "s3://b/rl-deepracer-0/model/ is empty after destroy"
    outcome = run(world)
    assert table(outcome)[-1] == ("models kept", "FAILED")
    assert not outcome.passed


def test_a_stack_that_could_not_even_be_created_is_still_destroyed_or_reported():
    class Uncreatable(FakeStack):
        def create(self) -> None:
            self.calls.append("stack.create")
            raise RuntimeError("error: no Pulumi.yaml project file found")

    world = World()
    world.stack = Uncreatable(world.calls, world.clock)
    outcome = run(world)

    assert outcome.result_of("up").detail == "RuntimeError: error: no Pulumi.yaml project file found"
    assert world.calls == ["stack.create", "stack.destroy", "stack.remove"]


def test_details_are_one_line_and_short():
    world = World()
    world.answers["doctor"] = [RemoteResult(1, "", "x" * 500 + "\n")]
    outcome = run(world)
    detail = outcome.result_of("doctor").detail
    assert len(detail) == 240 and detail.endswith("…") and "\n" not in detail


def test_the_progress_log_keeps_the_last_40_lines_of_a_hosts_answer():
    world = World()
    world.answers["validate"] = [RemoteResult(2, "".join(f"line {n}\n" for n in range(100)), "the reason\n")]
    lines: list[str] = []
    run(world, say=lines.append)
    start = lines.index("    $ sudo -i -u ubuntu deepracer validate")
    assert lines[start + 1:start + 42] == [f"    line {n}" for n in range(61, 100)] + ["    the reason",
                                                                                    "--- validate: FAILED in 30 s: exit 2: the reason"]
