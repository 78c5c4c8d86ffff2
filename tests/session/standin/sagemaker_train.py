"""Stand-in for the SageMaker trainer the rl_coach container starts as a sibling (`train` in the same image).

Follows the real training worker's S3 contract (FORMATS.md §4.3, §5.5): reads /opt/ml/input/config/
hyperparameters.json as SageMaker-local wrote it (every value a string) and types them with the real defaults
(simapp bundle/markov/sagemaker_graph_manager.py `get_updated_hyper_parameters`); with a pretrained model, reads
that model's deepracer_checkpoints.json and the checkpoint it names (missing -> simapp_exception, exit 1);
prints the header and 'Using the following hyper-parameters'; serves Redis's PING on 6379 (the workers' first contact with
the real trainer's Redis) and hands the workers ip/hyperparameters.json and ip/ip.json + ip/done;
then per iteration saves `model/<n>_Step-<steps>.ckpt.{index,meta,data-00000-of-00001}`, `model/model_<n>.pb`
and `model/.coach_checkpoint`, waits until the workers' simtrace CSVs of that checkpoint hold
num_episodes_between_training episodes (the real one receives them over Redis), prints their 'Training>'
lines and one 'Policy training>' line per epoch, and saves the next checkpoint. Checkpoints beyond the newest
four are pruned, never the best one. No neural network: a checkpoint's bytes only say where it came from.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import re
import socket
import sys
import time

from simapp import (
    NUM_MODELS_TO_KEEP,
    exit_on_sigterm,
    get_bytes,
    get_json,
    keys_under,
    log,
    put,
    s3_client,
    sensor_line,
    serve_redis,
    simapp_exit,
    wait_for,
)

CHECKPOINT_FILES = (".ckpt.index", ".ckpt.meta", ".ckpt.data-00000-of-00001")


def updated_hyper_parameters(given: dict, algorithm: str) -> dict:
    """The real trainer's hyperparameters: the given ones typed, the rest at their defaults, only those the
    algorithm uses (simapp 6.0.4 bundle/markov/sagemaker_graph_manager.py, get_updated_hyper_parameters)."""
    def of(kind, key, default):
        return kind(given.get(key, default))

    params = {"batch_size": of(int, "batch_size", 64), "stack_size": of(int, "stack_size", 1),
              "lr": of(float, "lr", 0.0003),
              "exploration_type": str(given.get("exploration_type", "categorical")).lower(),
              "e_greedy_value": of(float, "e_greedy_value", 0.05), "epsilon_steps": of(int, "epsilon_steps", 10000),
              "discount_factor": of(float, "discount_factor", 0.999),
              "loss_type": str(given.get("loss_type", "mean squared error")).lower(),
              "num_episodes_between_training": of(int, "num_episodes_between_training", 20),
              "term_cond_max_episodes": of(int, "term_cond_max_episodes", 100000),
              "term_cond_avg_score": of(float, "term_cond_avg_score", 100000)}
    if algorithm == "clipped_ppo":
        params.update(beta_entropy=of(float, "beta_entropy", 0.01), num_epochs=of(int, "num_epochs", 10))
    elif algorithm == "sac":
        params.update(sac_alpha=of(float, "sac_alpha", 0.2))
    return params


def fail(message: str) -> None:
    simapp_exit(message, function="training_worker", exception_type="training_worker.exceptions")


class Trainer:
    def __init__(self, hyperparameters: dict) -> None:
        self.hp = hyperparameters
        self.bucket = hyperparameters["s3_bucket"]
        self.prefix = hyperparameters["s3_prefix"].strip("/")
        self.s3 = s3_client(region=hyperparameters.get("aws_region"))
        self.nn: dict = {}  # typed, once the model metadata names the algorithm
        self.steps = 0
        self.episodes = 0
        self.last = ""  # the newest checkpoint's name

    def key(self, rest: str) -> str:
        return f"{self.prefix}/{rest}"

    # --- start-up ------------------------------------------------------------------------------------------------

    def start(self) -> str:
        """Everything before the first checkpoint; returns where the first checkpoint's weights come from."""
        hp = self.hp
        log(f"Training Worker Args: Namespace(preset_s3_key=None, environment_s3_key=None, "
            f"model_metadata_s3_key='{hp.get('model_metadata_s3_key')}', checkpoint_dir='./checkpoint_sagemaker', "
            f"pretrained_checkpoint_dir='./pretrained_checkpoint_sagemaker', s3_bucket='{self.bucket}', "
            f"s3_prefix='{self.prefix}', s3_endpoint_url={os.environ.get('S3_ENDPOINT_URL')!r}, "
            f"framework='tensorflow', pretrained_s3_bucket={hp.get('pretrained_s3_bucket')!r}, "
            f"pretrained_s3_prefix={hp.get('pretrained_s3_prefix', 'sagemaker')!r}, "
            f"pretrained_checkpoint={hp.get('pretrained_checkpoint', 'best')!r}, aws_region='{hp.get('aws_region')}')")
        log(f"S3 bucket: {self.bucket} \n S3 prefix: {self.prefix} \n S3 endpoint URL: "
            f"{os.environ.get('S3_ENDPOINT_URL')}")
        source = self.pretrained() if hp.get("pretrained_s3_prefix") else "random initialisation"

        metadata_url = str(hp.get("model_metadata_s3_key", ""))
        metadata_bucket, _, metadata_key = metadata_url.removeprefix("s3://").partition("/")
        metadata = get_json(self.s3, metadata_bucket, metadata_key)
        if metadata is None:
            fail(f"Unable to download model metadata from s3://{metadata_bucket}/{metadata_key}")
        log(f"[s3] Successfully downloaded model metadata                  from s3 key {metadata_key} to local "
            "./custom_files/agent/model_metadata.json.")
        log(sensor_line(metadata))
        log(f"Action space from file: {metadata.get('action_space')}")
        self.nn = updated_hyper_parameters(hp, metadata.get("training_algorithm", "clipped_ppo"))
        log("Using the following hyper-parameters")
        log(json.dumps(self.nn, indent=2, sort_keys=True))
        put(self.s3, self.bucket, self.key("ip/hyperparameters.json"), self.nn)
        log(f"[s3] Successfully uploaded hyperparameters to                  s3 bucket {self.bucket} with s3 key "
            f"{self.key('ip/hyperparameters.json')}.")
        put(self.s3, self.bucket, self.key("model/model_metadata.json"), metadata)
        serve_redis()  # the real trainer's redis-server runs before it hands out its address
        log(f"Hostname: {socket.gethostname()}")
        put(self.s3, self.bucket, self.key("ip/ip.json"), {"IP": socket.gethostbyname(socket.gethostname())})
        put(self.s3, self.bucket, self.key("ip/done"), "")
        log(f"[s3] Successfully uploaded ip address to                  s3 bucket {self.bucket} with s3 key "
            f"{self.key('ip/ip.json')}.")
        return source

    def pretrained(self) -> str:
        """The checkpoint to start from, as simapp 6.0.4's training_worker.py picks it: `best` from the model's
        deepracer_checkpoints.json, anything else its `last` (a checkpoint number too)."""
        bucket, prefix = self.hp.get("pretrained_s3_bucket"), str(self.hp["pretrained_s3_prefix"]).strip("/")
        choice = "best" if str(self.hp.get("pretrained_checkpoint", "best")).lower() == "best" else "last"
        model = f"{prefix}/model/"
        document = get_json(self.s3, bucket, f"{model}deepracer_checkpoints.json")
        if document is None:
            fail(f"Unable to find deepracer checkpoint json of the pretrained model at "
                 f"s3://{bucket}/{model}deepracer_checkpoints.json")
        log(f"[s3] Successfully downloaded deepracer checkpoint json from                  s3 key "
            f"{model}deepracer_checkpoints.json to local pretrained_checkpoint_sagemaker/agent/"
            "deepracer_checkpoints.json.")
        name = (document.get(f"{choice}_checkpoint") or {}).get("name")
        if not name:
            fail(f"deepracer_checkpoints.json of the pretrained model s3://{bucket}/{model} has no {choice} "
                 "checkpoint")
        for suffix in CHECKPOINT_FILES:
            key = f"{model}{name.removesuffix('.ckpt')}{suffix}"
            if get_bytes(self.s3, bucket, key) is None:
                fail(f"Checkpoint {name} of the pretrained model is incomplete: s3://{bucket}/{key} does not exist")
            log(f"[s3] Successfully downloaded {os.path.basename(key)} from                  s3 key {key} to local "
                f"pretrained_checkpoint_sagemaker/agent/{os.path.basename(key)}.")
        log(f"Checkpoint> Restoring from path=./pretrained_checkpoint_sagemaker/agent/{name}")
        return f"s3://{bucket}/{model}{name}"

    # --- checkpoints ---------------------------------------------------------------------------------------------

    def save(self, number: int, source: str) -> None:
        name = self.last = f"{number}_Step-{self.steps}.ckpt"
        log(f"Checkpoint> Saving in path=['./checkpoint_sagemaker/agent/{name}']")
        weights = json.dumps({"checkpoint": name, "trained_from": source, "episodes": self.episodes,
                              "steps": self.steps}).encode()
        for suffix in CHECKPOINT_FILES:
            put(self.s3, self.bucket, self.key(f"model/{name.removesuffix('.ckpt')}{suffix}"), weights)
        log(f"Uploaded 3 files for checkpoint {number}")
        put(self.s3, self.bucket, self.key(f"model/model_{number}.pb"), weights)
        put(self.s3, self.bucket, self.key("model/.coach_checkpoint"), name)
        log(f"[s3] Successfully uploaded coach checkpoint to                   s3 bucket {self.bucket} with s3 key "
            f"{self.key('model/.coach_checkpoint')}.")
        log(f"saved intermediate frozen graph: {self.key(f'model/model_{number}.pb')}")
        best, last = self.recorded()
        log(f"Best checkpoint number: {best}, Last checkpoint number: {last}")
        frozen = best if best >= 0 else number
        os.makedirs("/opt/ml/model/agent", exist_ok=True)
        with open("/opt/ml/model/agent/model.pb", "wb") as out:
            out.write(weights)
        log(f"Copying the frozen checkpoint from ./frozen_models/agent/model_{frozen}.pb to "
            "/opt/ml/model/agent/model.pb.")
        self.prune(best)
        put(self.s3, self.bucket, self.key("model/.ready"), "")

    def recorded(self) -> tuple[int, int]:
        """(best, last) checkpoint numbers from deepracer_checkpoints.json, which rollout worker 0 writes."""
        document = get_json(self.s3, self.bucket, self.key("model/deepracer_checkpoints.json"))
        if document is None:
            log("Unable to find deepracer checkpoint json")
            return -1, -1

        def number(entry: str) -> int:
            name = (document.get(entry) or {}).get("name") or ""
            return int(name.split("_Step-")[0]) if "_Step-" in name else -1

        return number("best_checkpoint"), number("last_checkpoint")

    def prune(self, best: int) -> None:
        model = self.key("model/")
        found: dict[int, list[str]] = {}
        for key in keys_under(self.s3, self.bucket, model):
            match = re.match(r"(\d+)_Step-\d+\.ckpt\.|model_(\d+)\.pb$", key[len(model):])
            if match:
                found.setdefault(int(match.group(1) or match.group(2)), []).append(key)
        old = sorted(found)[:-NUM_MODELS_TO_KEEP]
        doomed = [number for number in old if number != best]
        if doomed:
            for number in doomed:
                for key in found[number]:
                    self.s3.delete_object(Bucket=self.bucket, Key=key)
            log(f"Deleting the frozen models in s3 for the iterations: {set(str(n) for n in doomed)}")

    # --- iterations ----------------------------------------------------------------------------------------------

    def episodes_of(self, iteration: int) -> list[tuple[int, float, int]]:
        """(episode, total reward, steps) per episode the workers played with checkpoint `iteration`, from their
        simtrace CSVs (`<prefix>[/<worker>]/training-simtrace/<iteration>-iteration.csv`)."""
        pattern = re.compile(rf"^{re.escape(self.prefix)}/(\d+/)?training-simtrace/{iteration}-iteration\.csv$")
        played = []
        for key in sorted(k for k in keys_under(self.s3, self.bucket, f"{self.prefix}/") if pattern.match(k)):
            rows = csv.DictReader(io.StringIO(get_bytes(self.s3, self.bucket, key).decode()))
            totals: dict[int, list[float]] = {}
            for row in rows:
                episode = totals.setdefault(int(row["episode"]), [0.0, 0])
                episode[0] += float(row["reward"])
                episode[1] += 1
            played.extend((number, reward, steps) for number, (reward, steps) in sorted(totals.items()))
        return played

    def train(self, source: str) -> None:
        wanted = int(self.nn.get("num_episodes_between_training", 20))
        epochs = int(self.nn.get("num_epochs", 3))
        lr = float(self.nn.get("lr", 0.0003))
        self.save(0, source)
        iteration = 0
        while True:
            def enough() -> list:
                found = self.episodes_of(iteration)  # noqa: B023 - wait_for calls it in this iteration only
                return found if len(found) >= wanted else []

            played = wait_for(enough, f"{wanted} episodes of iteration {iteration}")
            for _, reward, steps in played:
                self.episodes += 1
                self.steps += steps
                log(f"Training> Name=main_level/agent, Worker=0, Episode={self.episodes}, "
                    f"Total reward={round(reward, 2)}, Steps={self.steps}, Training iteration={iteration}")
            entropy = 2.84
            for epoch in range(epochs):
                entropy -= random.uniform(0.0, 0.01)
                log(f"Policy training> Surrogate loss={random.uniform(-0.03, 0.01)}, KL divergence="
                    f"{math.exp(random.uniform(-11, -5))}, Entropy={entropy}, training epoch={epoch}, "
                    f"learning_rate={lr}")
            iteration += 1
            self.save(iteration, f"s3://{self.bucket}/{self.key('model/')}{self.last} + {len(played)} episodes")


def main() -> int:
    exit_on_sigterm()
    log("Writing training job pid to /opt/ml/training_worker.pid: 68")
    with open("/opt/ml/input/config/hyperparameters.json") as source:
        hyperparameters = json.load(source)
    trainer = Trainer(hyperparameters)
    source = trainer.start()
    log("DoorMan: installing SIGINT, SIGTERM")
    started = time.monotonic()
    try:
        trainer.train(source)
    except TimeoutError as error:
        simapp_exit(f"{error} after {time.monotonic() - started:.0f} s; are the rollout workers running?",
                    function="training_worker", exception_type="training_worker.exceptions",
                    event_type="system_error", error_code="500")
    return 0


if __name__ == "__main__":
    sys.exit(main())
