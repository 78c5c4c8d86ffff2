"""session.run.progress against the real metrics files and logs in ../shared/data, stored in moto's S3 server.

Expected numbers are worked out here from the raw files by other routes than the module takes: which episodes
form an iteration from the simtrace CSVs (`<n>-iteration.csv`) and from the trainer's `Training> ...
Training iteration=<n>` lines; checkpoint names from the trainer's `Checkpoint> Saving in path=` lines and the
simulation log's `[BestModelSelection]` lines.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from statistics import mean

import pytest

from session.run.progress import (
    CHECKPOINTS_JSON,
    Checkpoint,
    TrainingProgress,
    checkpoint_files,
    group_iterations,
    metrics_worker,
    parse_checkpoints_json,
    read_progress,
)
from tests.shared_data import LOGS as DATA

DRFC_3 = DATA / "drfc-2022-three-workers"
DRFC_1 = DATA / "drfc-2022-single-worker"
DROA = DATA / "droa-2026-continuous-ppo-training"
DROA_METRICS_NAME = "2026-03-11T07:55:56.599Z-deepracerindy-training-30wm3cccH9SOOML.json"


def entries(path: Path) -> list[dict]:
    return json.loads(path.read_text())["metrics"]


def training(path: Path) -> list[dict]:
    return [e for e in entries(path) if e["phase"] == "training"]


def put(s3_client, bucket: str, key: str, data: bytes) -> None:
    s3_client.put_object(Bucket=bucket, Key=key, Body=data)


def s3_calls(storage) -> list[tuple[str, dict]]:
    """Every S3 API call the storage's client makes from now on: (operation, parameters)."""
    calls: list[tuple[str, dict]] = []
    storage.client.meta.events.register(
        "before-parameter-build.s3.*",
        lambda params, model, **_: calls.append((model.name, dict(params))))
    return calls


# --- the three-worker DRfC run --------------------------------------------------------------------------------


@pytest.fixture
def three_workers(storage, s3_client) -> TrainingProgress:
    for name in ("TrainingMetrics.json", "TrainingMetrics_1.json", "TrainingMetrics_2.json"):
        put(s3_client, storage.bucket, f"drfc-3/metrics/{name}", (DRFC_3 / "metrics" / name).read_bytes())
    return read_progress(storage, "drfc-3", "drfc-3/metrics")


def simtrace_episodes(worker: int, iteration: int) -> set[int]:
    """Episode numbers (the metrics' 1-based numbering) in one worker's simtrace file of one iteration."""
    with open(DRFC_3 / str(worker) / "training-simtrace" / f"{iteration}-iteration.csv", newline="") as stream:
        return {int(row["episode"]) + 1 for row in csv.DictReader(stream)}


def test_three_workers_are_grouped_into_the_iterations_their_simtrace_files_name(three_workers):
    files = [DRFC_3 / "metrics" / name for name in
             ("TrainingMetrics.json", "TrainingMetrics_1.json", "TrainingMetrics_2.json")]
    per_worker = len(simtrace_episodes(0, 0))
    assert per_worker == 10 and three_workers.episodes_per_iteration == per_worker

    for number in (0, 22):
        played = [e for worker, path in enumerate(files) for e in training(path)
                  if e["episode"] in simtrace_episodes(worker, number)]
        iteration = next(i for i in three_workers.iterations if i.number == number)
        assert iteration.episodes == len(played) == 30
        assert iteration.mean_reward == pytest.approx(mean(e["reward_score"] for e in played))
        assert iteration.mean_completion == pytest.approx(mean(e["completion_percentage"] for e in played))
        assert iteration.laps == sum(e["episode_status"] == "Lap complete" for e in played)

    all_training = [e for path in files for e in training(path)]
    assert three_workers.episodes == len(all_training) == 719
    assert three_workers.eval_episodes == sum(e["phase"] == "evaluation" for path in files for e in entries(path))
    assert three_workers.laps == sum(e["episode_status"] == "Lap complete" for e in all_training)
    last_episode = max(e["episode"] for e in all_training)
    assert [i.number for i in three_workers.iterations] == list(range((last_episode - 1) // per_worker + 1))
    assert sum(i.episodes for i in three_workers.iterations) == three_workers.episodes
    assert [(f.worker, f.state) for f in three_workers.metrics_files] == [(1, "read"), (2, "read"), (3, "read")]
    assert three_workers.notes == () and three_workers.updated is not None


def test_evaluation_episodes_belong_to_the_iteration_they_follow(three_workers):
    first = entries(DRFC_3 / "metrics" / "TrainingMetrics.json")
    # The evaluations right after the 10th training episode judge the checkpoint that played episodes 1-10.
    start = next(n for n, e in enumerate(first) if e["phase"] == "evaluation")
    end = next(n for n in range(start, len(first)) if first[n]["phase"] == "training")
    evaluated = first[start:end]
    assert three_workers.iterations[0].eval_episodes == len(evaluated)
    assert three_workers.iterations[0].eval_completion == pytest.approx(
        mean(e["completion_percentage"] for e in evaluated))
    assert three_workers.iterations[-1].eval_episodes == 0  # the iteration being played has not been judged


# --- the DRoA run with its trainer and simulation logs --------------------------------------------------------


def trainer_log() -> str:
    return (DROA / "training-sagemaker.log").read_text()


def simulation_log() -> str:
    return (DROA / "simulation-robomaker.log").read_text()


def best_model_selections() -> list[tuple[str, list[float], float]]:
    """(checkpoint name, evaluation progress list, their mean) for each time the simulator chose a new best."""
    found = []
    lines = simulation_log().splitlines()
    for n, line in enumerate(lines):
        chosen = re.search(r'Updating the best checkpoint to "([^"]+)"', line)
        if not chosen:
            continue
        listed = next(re.search(r"Evaluation episode progress: \[(.*)\]", lines[k])
                      for k in range(n - 1, -1, -1) if "Evaluation episode progress:" in lines[k])
        averaged = next(re.search(r"progress mean: ([\d.]+|None)", lines[k])
                        for k in range(n - 1, -1, -1) if "Evaluation episode progress mean:" in lines[k])
        values = [float(v) for v in listed[1].split(",")] if listed[1] else []
        found.append((chosen[1], values, float(averaged[1]) if averaged[1] != "None" else None))
    return found


@pytest.fixture
def droa(storage, s3_client) -> TrainingProgress:
    """The DRoA run as it was stored: metrics under training/<job>.json, the checkpoints the trainer saved, and
    the deepracer_checkpoints.json the simulator wrote at its last choice of a best checkpoint."""
    prefix = "droa-model"
    put(s3_client, storage.bucket, f"{prefix}/metrics/training/{DROA_METRICS_NAME}",
        (DROA / "training-metrics.json").read_bytes())
    saved = re.findall(r"Checkpoint> Saving in path=\['\./checkpoint_sagemaker/agent/([^']+)'\]", trainer_log())
    for name in saved:
        for suffix in (".index", ".meta", ".data-00000-of-00001"):
            put(s3_client, storage.bucket, f"{prefix}/model/{name}{suffix}", b"tf")
        put(s3_client, storage.bucket, f"{prefix}/model/model_{name.split('_')[0]}.pb", b"pb")
    name, _, average = best_model_selections()[-1]
    chosen = {"name": name, "avg_eval_metric": average, "time_stamp": 1773217000.5}
    put(s3_client, storage.bucket, f"{prefix}/model/{CHECKPOINTS_JSON}",
        json.dumps({"best_checkpoint": chosen, "last_checkpoint": chosen}).encode())
    put(s3_client, storage.bucket, f"{prefix}/model/.coach_checkpoint", saved[-1].encode())
    return read_progress(storage, prefix, f"{prefix}/metrics")


def test_droa_iterations_are_the_trainers_training_iterations(droa):
    by_iteration: dict[int, list[int]] = {}
    for episode, iteration in re.findall(r"Training> Name=main_level/agent, Worker=0, Episode=(\d+), .*"
                                         r"Training iteration=(\d+)", trainer_log()):
        by_iteration.setdefault(int(iteration), []).append(int(episode))
    rewards = {e["episode"]: e["reward_score"] for e in training(DROA / "training-metrics.json")}

    assert [i.number for i in droa.iterations] == sorted(by_iteration) == list(range(16))
    for iteration in droa.iterations:
        episodes = by_iteration[iteration.number]
        assert iteration.episodes == len(episodes)
        assert iteration.mean_reward == pytest.approx(mean(rewards[e] for e in episodes))
    assert droa.episodes == len(rewards) == 302
    assert droa.episodes_per_iteration == len(by_iteration[0]) == 20
    assert droa.best_model_metric == "progress"


def test_droa_evaluations_are_those_the_simulator_judged_each_checkpoint_by(droa):
    judged = [(Checkpoint.from_name(name).number, values) for name, values, _ in best_model_selections() if values]
    assert len(judged) >= 8
    for number, values in judged:
        iteration = droa.iterations[number]
        # completion_percentage is the progress truncated to a whole percent
        assert iteration.eval_episodes == len(values)
        assert iteration.eval_completion == pytest.approx(mean(int(v) for v in values)), number


def test_droa_checkpoints_newest_file_and_best_from_deepracer_checkpoints_json(droa):
    saved = re.findall(r"agent/(\d+)_Step-(\d+)\.ckpt'\]", trainer_log())
    newest_number, newest_steps = map(int, saved[-1])
    assert (droa.newest_checkpoint.number, droa.newest_checkpoint.steps) == (newest_number, newest_steps)
    assert droa.newest_checkpoint.name == "15_Step-10693.ckpt"
    assert [c.number for c in droa.checkpoints] == [int(n) for n, _ in saved]

    best_name, _, best_average = best_model_selections()[-1]
    assert best_name == "13_Step-8383.ckpt"
    assert droa.best_checkpoint == Checkpoint(best_name, 13, 8383, best_average, 1773217000.5)
    assert droa.last_checkpoint.name == best_name and droa.last_checkpoint.metric == 100.0


def test_a_first_worker_whose_trials_never_restart_is_split_at_its_evaluations():
    real = entries(DROA / "training-metrics.json")
    counting_on = [{**e, "trial": e["episode"]} if e["phase"] == "training" else e for e in real]
    assert group_iterations({1: counting_on}) == group_iterations({1: real})
    assert len(group_iterations({1: counting_on})[0]) == 16


def test_progress_survives_its_json_form(droa):
    again = TrainingProgress.from_dict(json.loads(json.dumps(droa.to_dict())))
    assert again == droa
    assert droa.to_dict()["newest_checkpoint"]["name"] == "15_Step-10693.ckpt"


# --- checkpoints, spellings and names -------------------------------------------------------------------------


def test_deepracer_checkpoints_json_in_both_spellings():
    drfc = {"best_checkpoint": {"name": "20_Step-14330.ckpt", "avg_comp_pct": 87.5, "time_stamp": 1657398711.2},
            "last_checkpoint": {"name": "26_Step-18755.ckpt", "avg_comp_pct": "64.0"}}
    last, best = parse_checkpoints_json(drfc)
    assert best == Checkpoint("20_Step-14330.ckpt", 20, 14330, 87.5, 1657398711.2)
    assert last == Checkpoint("26_Step-18755.ckpt", 26, 18755, 64.0, None)
    simapp = {"best_checkpoint": {"name": "3_Step-1230.ckpt", "avg_eval_metric": 11.94, "time_stamp": 1.0},
              "last_checkpoint": {"name": "4_Step-1805.ckpt", "avg_eval_metric": None, "time_stamp": 2.0}}
    last, best = parse_checkpoints_json(simapp)
    assert (best.number, best.metric, last.number, last.metric) == (3, 11.94, 4, None)
    assert parse_checkpoints_json({"best_checkpoint": None}) == (None, None)
    assert parse_checkpoints_json([1, 2]) == (None, None)


def test_checkpoint_files_are_read_from_index_files_in_number_order():
    names = ["10_Step-5444.ckpt.index", "9_Step-4488.ckpt.index", "9_Step-4488.ckpt.meta", "model_9.pb",
             ".coach_checkpoint", "10_Step-5444.ckpt.data-00000-of-00001", "deepracer_checkpoints.json"]
    assert [(c.name, c.number, c.steps) for c in checkpoint_files(names)] == [
        ("9_Step-4488.ckpt", 9, 4488), ("10_Step-5444.ckpt", 10, 5444)]


@pytest.mark.parametrize("key, worker", [
    ("TrainingMetrics.json", 1), ("TrainingMetrics_1.json", 2), ("TrainingMetrics_11.json", 12),
    (f"training/{DROA_METRICS_NAME}", 1), ("training/training-20220611205309-EHNgTNY2T9-77qXhqjBi6A_2.json", 3),
    ("EvaluationMetrics-20220709200242.json", None), ("evaluation/evaluation-1.json", None),
    ("training/nested/x.json", None), ("TrainingMetrics.json.tmp", None), ("TrainingMetrics_a.json", None),
])
def test_metrics_file_names(key, worker):
    assert metrics_worker(key) == worker


# --- runs that have just started, files being rewritten -------------------------------------------------------


def test_a_run_that_has_not_written_anything_yet(storage):
    progress = read_progress(storage, "brand-new", "brand-new/metrics")
    assert not progress.started
    assert progress.iterations == () and progress.newest_checkpoint is None and progress.best_checkpoint is None
    assert progress.notes == (f"no training metrics under s3://{storage.bucket}/brand-new/metrics/ yet",)


def test_a_run_with_only_its_first_checkpoint_and_episodes(storage, s3_client):
    first = entries(DROA / "training-metrics.json")[:7]
    put(s3_client, storage.bucket, "young/model/0_Step-0.ckpt.index", b"tf")
    put(s3_client, storage.bucket, "young/metrics/TrainingMetrics.json",
        json.dumps({"metrics": first, "version": 2.0, "best_model_metric": "progress"}).encode())
    progress = read_progress(storage, "young", "young/metrics")
    assert progress.started and progress.newest_checkpoint.name == "0_Step-0.ckpt"
    assert [(i.number, i.episodes) for i in progress.iterations] == [(0, 7)]
    assert progress.episodes_per_iteration is None and progress.notes == ()


def test_a_half_written_metrics_file_is_not_yet_readable_and_the_rest_still_counts(storage, s3_client):
    whole = (DRFC_3 / "metrics" / "TrainingMetrics.json").read_bytes()
    put(s3_client, storage.bucket, "busy/metrics/TrainingMetrics.json", whole[:len(whole) // 2])
    for name in ("TrainingMetrics_1.json", "TrainingMetrics_2.json"):
        put(s3_client, storage.bucket, f"busy/metrics/{name}", (DRFC_3 / "metrics" / name).read_bytes())
    checkpoints = json.dumps({"best_checkpoint": {"name": "3_Step-900.ckpt", "avg_eval_metric": 12.5}}).encode()
    put(s3_client, storage.bucket, f"busy/model/{CHECKPOINTS_JSON}", checkpoints[:-9])

    progress = read_progress(storage, "busy", "busy/metrics")

    states = {f.worker: (f.state, f.episodes) for f in progress.metrics_files}
    assert states == {1: ("unreadable", 0), 2: ("read", 240), 3: ("read", 240)}
    assert progress.episodes == len(training(DRFC_3 / "metrics" / "TrainingMetrics_1.json")) + len(
        training(DRFC_3 / "metrics" / "TrainingMetrics_2.json"))
    assert progress.best_checkpoint is None and progress.last_checkpoint is None
    notes = "\n".join(progress.notes)
    assert "busy/metrics/TrainingMetrics.json is not yet readable" in notes
    assert f"busy/model/{CHECKPOINTS_JSON} is not yet readable" in notes
    # Without the first worker's trial counter the other workers' iterations are unknown, not guessed.
    assert progress.iterations == () and "worker 2: 240 episodes not split into iterations" in notes


@pytest.mark.parametrize("damage", [b"", b"{", b'{"metrics": [{"episode": 1', b"\xff\xfe", b'{"metrics": 3}',
                                    b"[]", b"null"])
def test_any_damaged_metrics_file_is_reported_never_raised(storage, s3_client, damage):
    put(s3_client, storage.bucket, "damaged/metrics/TrainingMetrics.json", damage)
    progress = read_progress(storage, "damaged", "damaged/metrics")
    assert [f.state for f in progress.metrics_files] == ["unreadable"]
    assert progress.notes and "not yet readable" in progress.notes[0] and "\n" not in progress.notes[0]


def test_only_the_model_folder_and_the_metrics_files_are_listed_and_read(storage, s3_client, fill_bucket):
    # The metrics prefix is the model prefix itself here, beside thousands of simtrace objects.
    fill_bucket(storage.bucket, [f"big/{w}/training-simtrace/{n}-iteration.csv" for w in range(3) for n in range(400)])
    fill_bucket(storage.bucket, [f"big/mp4/camera-pip/{n}-video.mp4" for n in range(200)])
    put(s3_client, storage.bucket, "big/TrainingMetrics.json",
        (DRFC_1 / "metrics" / "TrainingMetrics.json").read_bytes())
    put(s3_client, storage.bucket, "big/EvaluationMetrics-20220709200242.json", b"{}")
    put(s3_client, storage.bucket, "big/model/5_Step-3000.ckpt.index", b"tf")
    calls = s3_calls(storage)

    progress = read_progress(storage, "big", "big")

    assert progress.episodes == len(training(DRFC_1 / "metrics" / "TrainingMetrics.json"))
    listed = sorted(params["Prefix"] for name, params in calls if name == "ListObjectsV2")
    read = sorted(params["Key"] for name, params in calls if name == "GetObject")
    assert listed == ["big/TrainingMetrics", "big/model/"]
    assert read == ["big/TrainingMetrics.json"]
