"""session.models.library (`models list`, `models show`) against the real model folders in ../shared/data, stored in moto's
S3 server in the layouts they came from.

What is real and what stands in (`real_models` below builds the bucket):

- DRfC single worker (`rl-drfc-1`) and three workers (`rl-drfc-3`): the real model_metadata.json,
  ip/hyperparameters.json and metrics files (and, for the first, its simtrace CSVs). The folders hold no
  checkpoints, so small stand-in files take their place; their names follow the simulator's
  `<n>_Step-<steps>.ckpt` with steps counted from the simtrace rows (one row per step) where there is a simtrace,
  and the trainer's pruning (the newest four and the best kept). The best and last checkpoints in
  deepracer_checkpoints.json are what the simulator's rule (best moves on `>=`) makes of the metrics' evaluation
  episodes. training_params.yaml is what this tool writes for the folder's track.
- Console 2022 (`data-2cc597af-.../models/2977ce21-.../`, the service bucket's layout with
  `sagemaker-robomaker-artifacts/`): real metadata, hyperparameters, metrics and simtrace; checkpoint names are the
  real ones from its trainer log (`Saving in path=...`), best and last from the log's last `Best checkpoint number`.
- DeepRacer on AWS 2026 (`admin19c0b9859c/models/30wm3cccH9SOOML/`, with `sagemaker-artifacts/`): real metrics;
  hyperparameters, model metadata and training_params.yaml as the trainer and simulation logs print them (the
  params with the simulator's own post-processing undone: scalars instead of one-element lists, the world name
  without the `_cw` it appended); checkpoint names real, from the trainer log; best from the simulation log.
- Every model's reward_function.py is this project's default one: none of the real folders has its own.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

import pytest
import yaml

import session
from session.core.config import load_config
from session.models.library import (
    ModelError,
    ModelLocation,
    choose_checkpoint,
    complete_checkpoints,
    list_models,
    locate,
    location_of,
    parse_choice,
    rank,
    show_model,
)
from session.run.progress import Checkpoint, Iteration, group_iterations, parse_metrics, read_progress
from session.run.training_params import dump, training_params
from session.storage.layout import CHECKPOINTS_JSON
from session.storage.s3 import Storage
from tests.shared_data import LOGS

DRFC_1 = LOGS / "drfc-2022-single-worker"
DRFC_3 = LOGS / "drfc-2022-three-workers"
CONSOLE = LOGS / "console-2022-discrete-ppo"
DROA = LOGS / "droa-2026-continuous-ppo-training"
REWARD = Path(session.__file__).parent / "defaults" / "reward_function.py"
CONSOLE_ROOT = "data-2cc597af-b029-4caa-af39-eb0b6d2fff35/models/2977ce21-ef27-4771-9f03-3b9c3cf74fb4"
DROA_ROOT = "admin19c0b9859c/models/30wm3cccH9SOOML"
DROA_METRICS = "2026-03-11T07:55:56.599Z-deepracerindy-training-30wm3cccH9SOOML.json"
CONSOLE_METRICS = "training-20220611205309-EHNgTNY2T9-77qXhqjBi6A.json"
KEEP = 4  # the trainer's NUM_MODELS_TO_KEEP


def stand_in(name: str) -> bytes:
    """A stand-in checkpoint file: unique per name, a few kB."""
    return (f"stand-in for {name}\n" * 100).encode()


def metrics_entries(path: Path) -> list[dict]:
    return parse_metrics(path.read_bytes())[0]


@dataclass
class ModelFacts:
    """What was put for one model, for tests to compare against."""

    prefix: str
    root: str
    layout: str
    kept: list[str]  # checkpoint names, oldest first
    best: str
    last: str
    newest: str
    objects: dict[str, bytes] = field(default_factory=dict)  # every key put under the root

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.objects.values())

    def number(self, name: str) -> int:
        return int(name.split("_")[0])


@dataclass
class RealBucket:
    bucket: str
    endpoint: str
    models: dict[str, ModelFacts]

    def storage(self) -> Storage:
        return Storage(self.bucket, endpoint_url=self.endpoint, access_key="testing", secret_key="testing")


def _put(s3, bucket: str, facts: ModelFacts, key: str, data: bytes) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    facts.objects[key] = data


def _checkpoints(s3, bucket: str, facts: ModelFacts, saved: list[str], best: str, last: str,
                 metric: Any, spelling: str = "avg_eval_metric") -> None:
    """model/ as the trainer leaves it: the newest KEEP checkpoints and the best, each with its frozen graph, the
    json naming best and last, .coach_checkpoint naming the newest."""
    kept = [name for name in saved[-KEEP:]]
    if best not in kept:
        kept.insert(0, best)
    kept.sort(key=lambda name: int(name.split("_")[0]))
    folder = f"{facts.prefix}/model/"
    for name in kept:
        for suffix in (".index", ".meta", ".data-00000-of-00001"):
            _put(s3, bucket, facts, folder + name + suffix, stand_in(name + suffix))
        _put(s3, bucket, facts, f"{folder}model_{name.split('_')[0]}.pb", stand_in(f"model_{name}.pb"))
    document = {"best_checkpoint": {"name": best, spelling: metric, "time_stamp": 1657398711.2},
                "last_checkpoint": {"name": last, spelling: metric, "time_stamp": 1657398711.2}}
    _put(s3, bucket, facts, folder + CHECKPOINTS_JSON, json.dumps(document).encode())
    _put(s3, bucket, facts, folder + ".coach_checkpoint", saved[-1].encode())
    facts.kept, facts.best, facts.last, facts.newest = kept, best, last, saved[-1]


def simulator_best(iterations: list[Iteration]) -> tuple[int, float]:
    """The simulator's best by progress: highest mean evaluation completion, moving on ties."""
    judged = [(it.eval_completion, it.number) for it in iterations if it.eval_episodes]
    value, number = max(judged)
    return number, value


def drfc_params(tmp: Path, bucket: str, prefix: str, workers: int, world: str = "reinvent_base") -> bytes:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "system.env").write_text(f"DR_CLOUD=aws\nDR_LOCAL_S3_BUCKET={bucket}\nDR_SIMAPP_VERSION=5.0.0-gpu\n"
                                    f"DR_WORKERS={workers}\n")
    (tmp / "run.env").write_text(f"DR_WORLD_NAME={world}\nDR_LOCAL_S3_MODEL_PREFIX={prefix}\n")
    loaded = load_config(tmp / "run.env", tmp / "system.env", environ={})
    return dump(training_params(loaded.system, loaded.run)).encode()


def droa_logged_params() -> dict:
    """The DRoA run's training params as its simulation log prints them, with the simulator's post-processing
    undone."""
    line = next(line for line in (DROA / "simulation-robomaker.log").read_text().splitlines()
                if "'WORLD_NAME'" in line and line.rstrip().endswith("}"))
    params = ast.literal_eval(line[line.index("{"):])
    params = {key: value[0] if isinstance(value, list) and len(value) == 1 else value for key, value in params.items()}
    assert params["WORLD_NAME"].endswith("_cw") and params["TRACK_DIRECTION_CLOCKWISE"] is True
    params["WORLD_NAME"] = params["WORLD_NAME"][:-len("_cw")]
    return params


def droa_metadata() -> dict:
    """model_metadata.json as the DRoA logs describe it (`Sensor list ...` and `Action space from file: ...`)."""
    log = (DROA / "training-sagemaker.log").read_text()
    described = re.search(r"Sensor list (\[.*?\]), network (\w+), simapp_version ([\d.]+), training_algorithm (\w+), "
                          r"action_space_type (\w+) lidar_config (\{.*?\})", log)
    space = ast.literal_eval(re.search(r"Action space from file: (\{.*\})", log)[1])
    return {"action_space": space, "sensor": ast.literal_eval(described[1]), "neural_network": described[2],
            "version": described[3], "training_algorithm": described[4], "action_space_type": described[5],
            "lidar_config": ast.literal_eval(described[6])}


def droa_hyperparameters() -> bytes:
    log = (DROA / "training-sagemaker.log").read_text()
    block = log.split("Using the following hyper-parameters\n", 1)[1]
    return block[:block.index("}\n") + 2].encode()


def saved_checkpoints(log: Path) -> list[str]:
    names = re.findall(r"Saving in path=\['\./checkpoint_sagemaker/agent/([^']+)'\]", log.read_text())
    # A restarted job saves some numbers twice; the files left are the later ones.
    latest = {}
    for name in names:
        latest[int(name.split("_")[0])] = name
    return [latest[number] for number in sorted(latest)]


def droa_best() -> tuple[str, float]:
    lines = (DROA / "simulation-robomaker.log").read_text().splitlines()
    chosen = [(n, m[1]) for n, line in enumerate(lines) if (m := re.search(r'Updating the best checkpoint to "([^"]+)"',
                                                                           line))]
    n, name = chosen[-1]
    average = next(re.search(r"progress mean: ([\d.]+)", lines[k])[1] for k in range(n - 1, -1, -1)
                   if "Evaluation episode progress mean:" in lines[k])
    return name, float(average)


def fill_real_models(s3, bucket: str, endpoint: str, tmp: Path) -> RealBucket:
    models: dict[str, ModelFacts] = {}

    # DRfC, one worker: real metadata, hyperparameters, metrics, simtrace.
    facts = models["rl-drfc-1"] = ModelFacts("rl-drfc-1", "rl-drfc-1", "drfc", [], "", "", "")
    for rel in ("model/model_metadata.json", "ip/hyperparameters.json", "metrics/TrainingMetrics.json",
                *(f"metrics/{p.name}" for p in sorted((DRFC_1 / "metrics").glob("EvaluationMetrics-*.json"))),
                *(f"training-simtrace/{p.name}" for p in sorted((DRFC_1 / "training-simtrace").glob("*.csv"))),
                "evaluation-20220709200242/evaluation-simtrace/0-iteration.csv"):
        _put(s3, bucket, facts, f"rl-drfc-1/{rel}", (DRFC_1 / rel).read_bytes())
    _put(s3, bucket, facts, "rl-drfc-1/reward_function.py", REWARD.read_bytes())
    _put(s3, bucket, facts, "rl-drfc-1/training_params.yaml", drfc_params(tmp / "drfc-1", bucket, "rl-drfc-1", 1))
    iterations = group_iterations({1: metrics_entries(DRFC_1 / "metrics" / "TrainingMetrics.json")})[0]
    rows = [sum(1 for _ in (DRFC_1 / "training-simtrace" / f"{n}-iteration.csv").open()) - 1
            for n in range(len(list((DRFC_1 / "training-simtrace").glob("*.csv"))))]
    saved = [f"{n}_Step-{sum(rows[:n])}.ckpt" for n in range(len(iterations))]
    best_number, best_value = simulator_best(list(iterations))
    last_number = max(it.number for it in iterations if it.eval_episodes)
    _checkpoints(s3, bucket, facts, saved, saved[best_number], saved[last_number], best_value, "avg_comp_pct")

    # DRfC, three workers: no reward function of its own; its params point at custom_files/.
    facts = models["rl-drfc-3"] = ModelFacts("rl-drfc-3", "rl-drfc-3", "drfc", [], "", "", "")
    for rel in ("model/model_metadata.json", "ip/hyperparameters.json", "metrics/TrainingMetrics.json",
                "metrics/TrainingMetrics_1.json", "metrics/TrainingMetrics_2.json"):
        _put(s3, bucket, facts, f"rl-drfc-3/{rel}", (DRFC_3 / rel).read_bytes())
    _put(s3, bucket, facts, "rl-drfc-3/training_params.yaml", drfc_params(tmp / "drfc-3", bucket, "rl-drfc-3", 3))
    iterations = group_iterations({w + 1: metrics_entries(DRFC_3 / "metrics" / name) for w, name in
                                   enumerate(("TrainingMetrics.json", "TrainingMetrics_1.json",
                                              "TrainingMetrics_2.json"))})[0]
    saved = [f"{n}_Step-{n * 1000}.ckpt" for n in range(len(iterations))]  # no simtrace of every iteration here
    best_number, best_value = simulator_best(list(iterations))
    last_number = max(it.number for it in iterations if it.eval_episodes)
    _checkpoints(s3, bucket, facts, saved, saved[best_number], saved[last_number], best_value, "avg_comp_pct")

    # The console's service bucket.
    artifacts = f"{CONSOLE_ROOT}/sagemaker-robomaker-artifacts"
    facts = models[artifacts] = ModelFacts(artifacts, CONSOLE_ROOT, "console", [], "", "", "")
    for key, path in ((f"{CONSOLE_ROOT}/model_metadata.json", CONSOLE / "model" / "model_metadata.json"),
                      (f"{artifacts}/ip/hyperparameters.json", CONSOLE / "ip" / "hyperparameters.json"),
                      *((f"{CONSOLE_ROOT}/{p.relative_to(CONSOLE).as_posix()}", p)
                        for p in sorted(CONSOLE.rglob("*")) if p.is_file()
                        and p.relative_to(CONSOLE).parts[0] in ("metrics", "sim-trace"))):
        _put(s3, bucket, facts, key, path.read_bytes())
    _put(s3, bucket, facts, f"{CONSOLE_ROOT}/reward_function.py", REWARD.read_bytes())
    log = next((CONSOLE / "logs" / "training").glob("*-sagemaker.log"))
    saved = saved_checkpoints(log)
    best_number = int(re.findall(r"Best checkpoint number: (\d+)", log.read_text())[-1])
    iterations = group_iterations({1: metrics_entries(CONSOLE / "metrics" / "training" / CONSOLE_METRICS)})[0]
    _checkpoints(s3, bucket, facts, saved, saved[best_number], saved[best_number],
                 iterations[best_number].eval_completion)

    # DeepRacer on AWS.
    artifacts = f"{DROA_ROOT}/sagemaker-artifacts"
    facts = models[artifacts] = ModelFacts(artifacts, DROA_ROOT, "droa", [], "", "", "")
    _put(s3, bucket, facts, f"{DROA_ROOT}/model_metadata.json", json.dumps(droa_metadata(), indent=4).encode())
    _put(s3, bucket, facts, f"{DROA_ROOT}/reward_function.py", REWARD.read_bytes())
    _put(s3, bucket, facts, f"{DROA_ROOT}/metrics/training/{DROA_METRICS}",
         (DROA / "training-metrics.json").read_bytes())
    _put(s3, bucket, facts, f"{artifacts}/ip/hyperparameters.json", droa_hyperparameters())
    _put(s3, bucket, facts, f"{artifacts}/training_params.yaml",
         yaml.safe_dump(droa_logged_params(), sort_keys=False).encode())
    saved = [name for name in saved_checkpoints(DROA / "training-sagemaker.log") if int(name.split("_")[0]) <= 15]
    best, average = droa_best()
    _checkpoints(s3, bucket, facts, saved, best, best, average)

    # What else a working bucket holds.
    for key in ("custom_files/reward_function.py", "custom_files/model_metadata.json",
                "custom_files/hyperparameters.json"):
        s3.put_object(Bucket=bucket, Key=key, Body=(Path(session.__file__).parent / "defaults" /
                                                     key.split("/")[1]).read_bytes())
    s3.put_object(Bucket=bucket, Key="hosts/i-0abc/bootstrap.json", Body=b'{"state": "ready"}')
    s3.put_object(Bucket=bucket, Key="bootstrap/session.tar.gz", Body=b"tarball")
    s3.put_object(Bucket=bucket, Key="rl-new/model/model_metadata.json", Body=b"{}")  # started, nothing saved yet
    s3.put_object(Bucket=bucket, Key="notes/2024/readme.txt", Body=b"not a model")
    s3.put_object(Bucket=bucket, Key="readme.txt", Body=b"top-level file")
    return RealBucket(bucket, endpoint, models)


@pytest.fixture(scope="module")
def real_models(s3_server, tmp_path_factory) -> RealBucket:
    import uuid

    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    return fill_real_models(s3, bucket, s3_server, tmp_path_factory.mktemp("params"))


@pytest.fixture
def real_storage(real_models):
    with real_models.storage() as storage:
        yield storage


def s3_calls(storage: Storage) -> list[tuple[str, dict]]:
    calls: list[tuple[str, dict]] = []
    storage.client.meta.events.register("before-parameter-build.s3.*",
                                        lambda params, model, **_: calls.append((model.name, dict(params))))
    return calls


# --- list ---------------------------------------------------------------------------------------------------------


def test_list_finds_the_models_of_every_layout_and_nothing_else(real_models, real_storage):
    summaries = list_models(real_storage)
    assert [s.prefix for s in summaries] == sorted(real_models.models)
    for summary in summaries:
        facts = real_models.models[summary.prefix]
        assert (summary.root, summary.layout) == (facts.root, facts.layout)
        assert summary.url == f"s3://{real_models.bucket}/{facts.prefix}/"


def test_list_reports_checkpoints_size_and_date_as_stored(real_models, real_storage):
    for summary in list_models(real_storage):
        facts = real_models.models[summary.prefix]
        assert [c.name for c in summary.checkpoints] == facts.kept
        assert (summary.last.name, summary.best.name) == (facts.last, facts.best)
        assert summary.size == facts.size and summary.objects == len(facts.objects)
        assert summary.updated is not None
        assert summary.iterations == facts.number(facts.newest) + 1
        json.dumps(summary.to_dict())  # plain JSON types for --json


def test_list_counts_iterations_as_the_trainer_logged_them(real_models, real_storage):
    droa = {s.prefix: s for s in list_models(real_storage)}[f"{DROA_ROOT}/sagemaker-artifacts"]
    logged = {int(n) for n in re.findall(r"Training iteration=(\d+)", (DROA / "training-sagemaker.log").read_text())}
    assert droa.iterations == len(logged) == 16
    assert droa.episodes == sum(1 for e in metrics_entries(DROA / "training-metrics.json") if e["phase"] == "training")


def simtrace_episodes(iteration: int) -> set[int]:
    with open(DRFC_1 / "training-simtrace" / f"{iteration}-iteration.csv", newline="") as stream:
        return {int(row["episode"]) + 1 for row in csv.DictReader(stream)}


def test_best_by_reward_and_by_lap_time_match_the_metrics_grouped_by_simtrace(real_models, real_storage):
    summary = {s.prefix: s for s in list_models(real_storage)}["rl-drfc-1"]
    facts = real_models.models["rl-drfc-1"]
    training = [e for e in metrics_entries(DRFC_1 / "metrics" / "TrainingMetrics.json") if e["phase"] == "training"]
    episodes = {n: simtrace_episodes(n) for n in range(27)}
    by_iteration = {n: [e for e in training if e["episode"] in episodes[n]] for n in range(27)}
    rewards = {n: mean(e["reward_score"] for e in played) for n, played in by_iteration.items()}
    top = max(rewards.values())
    reward_number = max(n for n, value in rewards.items() if value == top)  # ties: the later, like the simulator
    laps = {n: min(e["elapsed_time_in_milliseconds"] for e in played if e["episode_status"] == "Lap complete") / 1000
            for n, played in by_iteration.items() if any(e["episode_status"] == "Lap complete" for e in played)}
    fastest = min(laps.values())
    lap_number = max(n for n, value in laps.items() if value == fastest)
    kept = {facts.number(name): name for name in facts.kept}

    assert (summary.best_by_reward.number, summary.best_by_reward.value) == (reward_number, pytest.approx(top))
    assert summary.best_by_reward.name == kept.get(reward_number)
    assert (summary.best_by_lap_time.number, summary.best_by_lap_time.value) == (lap_number, pytest.approx(fastest))
    assert summary.best_by_lap_time.name == kept.get(lap_number)
    assert summary.best_by_progress.number == facts.number(facts.best)


def droa_best_choices() -> list[str]:
    return re.findall(r'Updating the best checkpoint to "([^"]+)"', (DROA / "simulation-robomaker.log").read_text())


def test_best_by_progress_follows_the_simulators_choices(real_storage):
    prefix = f"{DROA_ROOT}/sagemaker-artifacts"
    iterations = read_progress(real_storage, prefix, f"{DROA_ROOT}/metrics").iterations
    choices = droa_best_choices()
    assert len(choices) >= 10
    for name in choices:  # each choice is the best of the iterations judged so far
        number = Checkpoint.from_name(name).number
        assert rank(iterations[:number + 1], {}, lambda it: it.eval_completion if it.eval_episodes else None
                    ).number == number, name
    droa = {s.prefix: s for s in list_models(real_storage)}[prefix]
    assert droa.best.name == choices[-1] == "13_Step-8383.ckpt"  # deepracer_checkpoints.json, as the log left it
    # The metrics also hold checkpoint 14's evaluation (100 %, >= the best's 100 %), which the simulation log
    # ends before reporting: by the simulator's rule 14 is the better one.
    assert (droa.best_by_progress.number, droa.best_by_progress.value) == (14, 100.0)
    assert droa.best_by_progress.name == "14_Step-9544.ckpt"


def test_listing_uses_delimiter_listings_and_never_reads_the_other_folders(real_storage):
    calls = s3_calls(real_storage)
    list_models(real_storage)
    listings = [params for name, params in calls if name == "ListObjectsV2"]
    assert not [p for p in listings if p.get("Prefix", "") == "" and "Delimiter" not in p]  # no bucket-wide listing
    touched = [p.get("Prefix", p.get("Key", "")) for name, p in calls]
    assert not [t for t in touched if t.startswith(("custom_files", "hosts", "bootstrap"))]
    reads = [p["Key"] for name, p in calls if name == "GetObject"]
    assert not [key for key in reads if key.endswith(".csv")]  # simtrace is listed for the size, never read
    full = [p["Prefix"] for p in listings if "Delimiter" not in p and p["Prefix"].endswith("/")]
    assert "rl-new/" not in full  # its model/ has no checkpoint: only model/ is listed


def test_an_empty_bucket_has_no_models(storage):
    assert list_models(storage) == []


# --- show ---------------------------------------------------------------------------------------------------------


def test_show_a_drfc_model(real_models, real_storage):
    details = show_model(real_storage, "rl-drfc-1")
    metadata = json.loads((DRFC_1 / "model" / "model_metadata.json").read_text())
    assert details.metadata == metadata and details.metadata_key == "rl-drfc-1/model/model_metadata.json"
    assert details.action_space_type == "discrete" and len(details.action_space) == 14
    assert details.sensors == ["FRONT_FACING_CAMERA"] and details.training_algorithm == "clipped_ppo"
    assert details.neural_network == "DEEP_CONVOLUTIONAL_NETWORK_SHALLOW"
    assert details.hyperparameters == json.loads((DRFC_1 / "ip" / "hyperparameters.json").read_text())
    assert details.reward_function_sha256 == hashlib.sha256(REWARD.read_bytes()).hexdigest()
    assert details.training["WORLD_NAME"] == "reinvent_base" and details.training["RACE_TYPE"] == "TIME_TRIAL"
    facts = real_models.models["rl-drfc-1"]
    rows = {row.checkpoint.name: row for row in details.checkpoints}
    assert list(rows) == facts.kept
    assert all(row.complete and row.frozen_graph for row in rows.values())
    assert [name for name, row in rows.items() if row.best] == [facts.best]
    assert [name for name, row in rows.items() if row.last] == [facts.last]
    assert details.notes == ()
    json.dumps(details.to_dict())


def test_show_a_droa_model_by_its_root_or_its_artifacts_prefix(real_storage):
    by_root = show_model(real_storage, DROA_ROOT)
    by_prefix = show_model(real_storage, f"{DROA_ROOT}/sagemaker-artifacts/")
    assert by_root.summary.prefix == by_prefix.summary.prefix == f"{DROA_ROOT}/sagemaker-artifacts"
    assert by_root.metadata_key == f"{DROA_ROOT}/model_metadata.json"
    assert by_root.action_space_type == "continuous"
    assert by_root.action_space == {"speed": {"high": 2, "low": 1}, "steering_angle": {"high": 25, "low": -25}}
    assert by_root.reward_function_key == f"{DROA_ROOT}/reward_function.py"
    assert by_root.training["WORLD_NAME"] == "reInvent2019_wide"
    assert by_root.training["TRACK_DIRECTION_CLOCKWISE"] is True
    assert by_root.hyperparameters["num_epochs"] == 3


def test_show_says_what_a_console_model_lacks(real_storage):
    details = show_model(real_storage, CONSOLE_ROOT)
    assert details.training_params_key is None and details.training == {}
    assert details.notes == (f"no training_params*.yaml in s3://{real_storage.bucket}/{CONSOLE_ROOT}/"
                             "sagemaker-robomaker-artifacts/",)
    assert details.summary.best_model_metric == "progress" and details.summary.episodes > 0


@pytest.mark.parametrize("prefix, expected", [
    ("nowhere", "no model at s3://{bucket}/nowhere/: it holds nothing"),
    ("rl-new/model", "no model at s3://{bucket}/rl-new/model/: it has no model/ folder"),
    ("", "a model prefix is needed"),
])
def test_show_without_a_model_is_one_line(real_storage, prefix, expected):
    with pytest.raises(ModelError) as caught:
        show_model(real_storage, prefix)
    message = str(caught.value)
    assert message.startswith(expected.format(bucket=real_storage.bucket)) and "\n" not in message


# --- choosing a checkpoint ---------------------------------------------------------------------------------------

LOCATION = ModelLocation("m", "m")


def model_objects(*names: str) -> dict[str, None]:
    return {f"m/model/{name}": None for name in names}


def files_of(*checkpoints: str) -> list[str]:
    return [f"{c}{s}" for c in checkpoints for s in (".index", ".meta", ".data-00000-of-00001")]


DOCUMENT = {"best_checkpoint": {"name": "3_Step-300.ckpt", "avg_eval_metric": 80.0, "time_stamp": 1.0},
            "last_checkpoint": {"name": "5_Step-500.ckpt", "avg_eval_metric": 40.0, "time_stamp": 2.0}}


def test_last_best_and_numbers():
    objects = model_objects(*files_of("3_Step-300.ckpt", "4_Step-400.ckpt", "5_Step-500.ckpt", "6_Step-600.ckpt"),
                            "model_3.pb", "model_6.pb")
    last = choose_checkpoint(LOCATION, objects, "last", checkpoints_document=DOCUMENT)
    assert last.checkpoint == Checkpoint("5_Step-500.ckpt", 5, 500, 40.0, 2.0) and last.frozen_graph is None
    best = choose_checkpoint(LOCATION, objects, "best", checkpoints_document=DOCUMENT)
    assert best.checkpoint.name == "3_Step-300.ckpt" and best.frozen_graph == "m/model/model_3.pb"
    assert best.keys == tuple(f"m/model/3_Step-300.ckpt{s}" for s in (".data-00000-of-00001", ".index", ".meta"))
    assert choose_checkpoint(LOCATION, objects, 6).checkpoint.name == "6_Step-600.ckpt"
    assert choose_checkpoint(LOCATION, objects, "last").checkpoint.name == "6_Step-600.ckpt"  # newest without json
    assert choose_checkpoint(LOCATION, objects, "last", coach_checkpoint="4_Step-400.ckpt\n").checkpoint.number == 4


@pytest.mark.parametrize("choice, document, expected", [
    (2, DOCUMENT, "checkpoint 2 is not in s3://b/m/model/ (complete checkpoints there: 3, 5; the trainer keeps only"),
    ("best", None, "s3://b/m/model/deepracer_checkpoints.json names no best checkpoint"),
    ("last", {"last_checkpoint": {"name": "4_Step-400.ckpt"}},
     "checkpoint 4_Step-400.ckpt (named last in deepracer_checkpoints.json) is not complete in s3://b/m/model/"),
])
def test_a_checkpoint_that_is_not_there(choice, document, expected):
    objects = model_objects(*files_of("3_Step-300.ckpt", "5_Step-500.ckpt"), "4_Step-400.ckpt.index")
    with pytest.raises(ModelError) as caught:
        choose_checkpoint(LOCATION, objects, choice, checkpoints_document=document, url=lambda key: f"s3://b/{key}")
    assert str(caught.value).startswith(expected)


def test_only_checkpoints_with_all_their_files_are_complete():
    objects = model_objects(*files_of("1_Step-1.ckpt"), "2_Step-2.ckpt.index", "2_Step-2.ckpt.meta",
                            "3_Step-3.ckpt.index", "3_Step-3.ckpt.data-00000-of-00001")
    assert list(complete_checkpoints(LOCATION, objects)) == ["1_Step-1.ckpt"]
    with pytest.raises(ModelError, match="holds no complete checkpoint"):
        choose_checkpoint(LOCATION, model_objects("2_Step-2.ckpt.index"), "last")


@pytest.mark.parametrize("text, expected", [("last", "last"), ("BEST", "best"), ("12", 12), (7, 7)])
def test_checkpoint_choices(text, expected):
    assert parse_choice(text) == expected


@pytest.mark.parametrize("text", ["newest", "-1", "1.5", ""])
def test_checkpoint_choice_errors(text):
    with pytest.raises(ModelError, match="--checkpoint: expected last, best or a checkpoint number"):
        parse_choice(text)


def test_rank_moves_on_ties_and_names_only_kept_checkpoints():
    iterations = [Iteration(0, mean_reward=5.0, best_lap_s=None), Iteration(1, mean_reward=9.0, best_lap_s=12.5),
                  Iteration(2, mean_reward=9.0, best_lap_s=12.5), Iteration(3, mean_reward=1.0, best_lap_s=14.0)]
    kept = {2: "2_Step-20.ckpt", 3: "3_Step-30.ckpt"}
    assert rank(iterations, kept, lambda it: it.mean_reward).__dict__ == {"number": 2, "value": 9.0,
                                                                          "name": "2_Step-20.ckpt"}
    assert rank(iterations, {}, lambda it: it.best_lap_s, lowest=True).number == 2
    assert rank(iterations, kept, lambda it: None) is None


def test_locations_of_the_three_layouts(real_storage):
    assert location_of("rl-1/") == ModelLocation("rl-1", "rl-1")
    assert location_of("a/b/sagemaker-artifacts").root == "a/b"
    assert locate(real_storage, CONSOLE_ROOT).layout == "console"
    assert locate(real_storage, DROA_ROOT).layout == "droa" and locate(real_storage, "rl-drfc-3").layout == "drfc"
