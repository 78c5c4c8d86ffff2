"""Stand-in for the image's /opt/ml/code/rl_coach/start.py (the `rl_coach` trainer container).

Like the real one (deepracer-simapp docker/files/rl-coach/start.py + SageMaker-local): reads its environment,
downloads the hyperparameters, writes the job's folder under /tmp/sagemaker (hyperparameters file, compose
file) and starts the SageMaker trainer as a SIBLING container through the Docker socket — named
`<tmp folder>-algo-1-<random>`, on the `sagemaker-local` network, with RUN_ID and TRAINING_JOB_NAME (= the
model prefix) in its environment — then relays the sibling's log like `docker compose up` does
(`algo-1-xxxxx  | <line>`) and exits with its exit code. Stopping this container leaves the sibling running,
exactly as with the real image: whoever stops training has to find and stop the sibling too.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import string
import sys
import tempfile

sys.path.insert(0, "/opt/ml/code/standin")

from simapp import exit_on_sigterm, get_bytes, log, s3_client  # noqa: E402

SAGEMAKER_ROOT = "/tmp/sagemaker"
NETWORK = "sagemaker-local"


def str2bool(value: str) -> bool:
    return value.lower() in ("yes", "true", "t", "1")


def main() -> int:
    exit_on_sigterm()
    bucket = os.environ.get("MODEL_S3_BUCKET")
    prefix = os.environ.get("MODEL_S3_PREFIX")
    image = os.environ.get("SAGEMAKER_IMAGE")
    region = os.environ.get("AWS_REGION", "us-east-1")
    log(f"Model checkpoints and other metadata will be stored at: s3://{bucket}/{prefix}")
    log(f"Uploading to s3://{bucket}/{prefix}")
    if not image:
        log("ERROR: No defined image.")
        return 1
    log(f"Using image {image}")
    if not bucket or not prefix:
        log("ERROR: MODEL_S3_BUCKET and MODEL_S3_PREFIX must be set.")
        return 1

    s3 = s3_client(region=region)
    hyperparameter_key = os.environ.get("HYPERPARAMETER_FILE_S3_KEY", "custom_files/hyperparameters.json")
    metadata_key = os.environ.get("MODELMETADATA_FILE_S3_KEY", "custom_files/model_metadata.json")
    data = get_bytes(s3, bucket, hyperparameter_key)
    if data is None:  # the real start.py dies here with boto's traceback
        log("Traceback (most recent call last):")
        log(f"botocore.exceptions.ClientError: An error occurred (404) when calling the HeadObject operation: "
            f"Not Found (s3://{bucket}/{hyperparameter_key})")
        return 1
    hyperparameters = {"s3_bucket": bucket, "s3_prefix": prefix, "aws_region": region,
                       "model_metadata_s3_key": f"s3://{bucket}/{metadata_key}"}
    if str2bool(os.environ.get("PRETRAINED", "False")):
        hyperparameters["pretrained_s3_bucket"] = os.environ.get("PRETRAINED_S3_BUCKET", "bucket")
        hyperparameters["pretrained_s3_prefix"] = os.environ.get("PRETRAINED_S3_PREFIX", "rl-deepracer-pretrained")
        hyperparameters["pretrained_checkpoint"] = os.environ.get("PRETRAINED_CHECKPOINT", "best")
    hyperparameters.update(json.loads(data))
    log(f"Configured following hyperparameters:\n{hyperparameters}")

    environment = {"RUN_ID": os.environ.get("RUN_ID", "Unknown"), "TRAINING_JOB_NAME": prefix,
                   "AWS_REGION": region}
    for name in ("TELEGRAF_HOST", "TELEGRAF_PORT", "CUDA_VISIBLE_DEVICES", "S3_ENDPOINT_URL",
                 "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        if os.environ.get(name):
            environment[name] = os.environ[name]
    if os.environ.get("MAX_MEMORY_STEPS", "").isdigit():
        environment["MAX_MEMORY_STEPS"] = os.environ["MAX_MEMORY_STEPS"]
    return run_sibling(image, hyperparameters, environment)


def relay(host: str, line: bytes) -> None:
    """One line of the sibling's log the way `docker compose up` shows it (its TTY adds a carriage return)."""
    log(f"{host}  | " + line.rstrip(b"\r").decode("utf-8", "replace"))


def run_sibling(image: str, hyperparameters: dict, environment: dict) -> int:
    """SageMaker-local's part: a folder per job under /tmp/sagemaker, one container per host, logs relayed."""
    import docker
    import yaml

    os.makedirs(SAGEMAKER_ROOT, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="tmp", dir=SAGEMAKER_ROOT)
    host = "algo-1-" + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
    config = os.path.join(folder, host, "input", "config")
    os.makedirs(config)
    os.makedirs(os.path.join(folder, "model"))
    with open(os.path.join(config, "hyperparameters.json"), "w") as out:
        json.dump(hyperparameters, out)
    with open(os.path.join(config, "resourceconfig.json"), "w") as out:
        json.dump({"current_host": host, "hosts": [host]}, out)

    client = docker.from_env()
    # The stand-in runs on the host's Python, which this container has bind-mounted read-only; the sibling
    # needs the same mounts. (The real image has its own Python; this is the stand-in's only extra step.)
    me = client.containers.get(socket.gethostname())
    python_binds = [bind for bind in me.attrs["HostConfig"].get("Binds") or [] if bind.endswith(":ro")]
    volumes = [f"{folder}/{host}/input:/opt/ml/input", f"{folder}/model:/opt/ml/model", *python_binds]
    name = f"{os.path.basename(folder)}-{host}"
    compose = {"networks": {NETWORK: {"external": True, "name": NETWORK}},
               "services": {host: {"container_name": name, "hostname": host, "image": image, "command": "train",
                                   "stdin_open": True, "tty": True, "volumes": volumes,
                                   "environment": [f"{k}={v}" for k, v in environment.items()
                                                   if not k.startswith("AWS_SECRET")],
                                   "networks": {NETWORK: {"aliases": [host]}}}}}
    with open(os.path.join(folder, "docker-compose.yaml"), "w") as out:
        yaml.safe_dump(compose, out, sort_keys=False)

    log(f"Creating {name} ... ")
    container = client.containers.run(image, "train", name=name, hostname=host, environment=environment,
                                      volumes=volumes, network=NETWORK, detach=True, tty=True, stdin_open=True,
                                      init=True)
    log(f"Creating {name} ... done")
    log(f"Attaching to {name}")
    pending = b""
    for chunk in container.logs(stream=True, follow=True):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            relay(host, line)
    if pending:
        relay(host, pending)
    code = int(container.wait()["StatusCode"])
    log(f"{name} exited with code {code}")
    shutil.rmtree(folder, ignore_errors=True)
    if code != 0:
        log("Traceback (most recent call last):")
        log(f"RuntimeError: Failed to run: ['docker-compose', '-f', '{folder}/docker-compose.yaml', 'up', "
            f"'--build', '--abort-on-container-exit'], Process exited with code: {code}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
