"""Stand-in for the image's /opt/ml/code/rl_coach/start.py (the `rl_coach` trainer container).

Follows deepracer-simapp 6.0.4's docker/files/rl-coach/start.py step by step, with the real SageMaker Python SDK
(2.x, as the image pins `sagemaker<3`): a `LocalSession` on the environment's region and S3 endpoint, the
hyperparameters downloaded from S3 and merged over the core ones, an `Estimator` with the real one's role,
instance type (`local_gpu` when the image's name says gpu, else `local`), environment and output path, then
`fit(job_name=<model prefix>, wait=True)`. The SDK writes /tmp/sagemaker/tmpXXXX/docker-compose.yaml (the image's
/root/.sagemaker/config.yaml names that root) and runs the first `docker-compose` on PATH — the real Compose v2
binary — against the Docker socket mounted into this container. Compose starts the SageMaker sibling
(`<random>-algo-1-<random>`, command `train`, on the `sagemaker-local` network), relays its log as
`algo-1-xxxxx  | <line>`, and the script ends when compose does, as the real one.

What the stand-in changes is only what this machine needs, in the image (tests/session/standin/__init__.py): the
SDK's telemetry is opted out, and the sibling gets this host's Python through the image's SageMaker config. Here
it only adds a log line per name lookup and connection this process makes (`NETWORK_LOG`), so a test can prove
that nothing leaves the machine. Like the real one, this script does not notice when compose started nothing:
`fit` returns and the container exits 0.
"""

from __future__ import annotations

import io
import json
import os
import sys

JOB_DURATION_S = 24 * 60 * 60
NETWORK_LOG = "standin-network:"  # + `lookup <host>` or `connect <address>`


def log_network_use() -> None:
    """One line per name lookup and connection of this process (Python's audit events)."""
    def hook(event: str, args: tuple) -> None:
        if event == "socket.getaddrinfo":
            print(f"{NETWORK_LOG} lookup {args[0]}", flush=True)
        elif event == "socket.connect":
            print(f"{NETWORK_LOG} connect {args[1]}", flush=True)

    sys.addaudithook(hook)


def str2bool(value: str) -> bool:
    return value.lower() in ("yes", "true", "t", "1")


def main() -> None:
    import boto3  # here, so that the network log sees what importing them does too
    import sagemaker
    from sagemaker.estimator import Estimator

    boto_session = boto3.session.Session(region_name=os.environ.get("AWS_REGION", "us-east-1"))
    endpoint_url = os.environ.get("S3_ENDPOINT_URL", None)
    # An empty S3_ENDPOINT_URL (AWS) goes to boto as no endpoint at all, and to the SDK as it is, as in the real one.
    s3_client = (boto_session.client("s3") if endpoint_url == ""
                 else boto_session.client("s3", endpoint_url=endpoint_url))
    sage_session = sagemaker.local.LocalSession(boto_session=boto_session, s3_endpoint_url=endpoint_url)
    aws_region = sage_session.boto_region_name

    s3_bucket = os.environ.get("MODEL_S3_BUCKET", None)
    s3_prefix = os.environ.get("MODEL_S3_PREFIX", None)
    pretrained = str2bool(os.environ.get("PRETRAINED", "False"))
    s3_pretrained_bucket = os.environ.get("PRETRAINED_S3_BUCKET", "bucket")
    s3_pretrained_prefix = os.environ.get("PRETRAINED_S3_PREFIX", "rl-deepracer-pretrained")
    s3_output_path = f"s3://{s3_bucket}/"  # the SDK appends the job name and output folder
    hyperparameter_file = os.environ.get("HYPERPARAMETER_FILE_S3_KEY", "custom_files/hyperparameters.json")
    # (sic: the real default has this typo; our trainer spec always sets the variable)
    modelmetadata_file = os.environ.get("MODELMETADATA_FILE_S3_KEY", "custom_files/model_petadata.json")
    job_name = s3_prefix
    print(f"Model checkpoints and other metadata will be stored at: {s3_output_path}{job_name}")
    print(f"Uploading to s3://{s3_bucket}/{s3_prefix}")

    sagemaker_image = os.environ.get("SAGEMAKER_IMAGE", None)
    # As the real one: the image's name decides; an unset SAGEMAKER_IMAGE dies here with AttributeError.
    instance_type = "local_gpu" if sagemaker_image.find("gpu") >= 0 else "local"
    if sagemaker_image:
        print(f"Using image {sagemaker_image}")
    else:
        print("ERROR: No defined image.")
        sys.exit(1)

    hyperparameters_core = {"s3_bucket": s3_bucket, "s3_prefix": s3_prefix, "aws_region": aws_region,
                            "model_metadata_s3_key": f"s3://{s3_bucket}/{modelmetadata_file}"}
    if pretrained:
        hyperparameters_core["pretrained_s3_bucket"] = f"{s3_pretrained_bucket}"
        hyperparameters_core["pretrained_s3_prefix"] = s3_pretrained_prefix
        hyperparameters_core["pretrained_checkpoint"] = os.environ.get("PRETRAINED_CHECKPOINT", "best")
    data = io.BytesIO()
    s3_client.download_fileobj(s3_bucket, hyperparameter_file, data)  # a missing file: boto's traceback, exit 1
    hyperparameters = {**hyperparameters_core, **json.loads(data.getvalue().decode("utf-8"))}
    print(f"Configured following hyperparameters:\n{hyperparameters}")

    model_metrics = ([{"Name": "Entropy", "Regex": "Entropy=(.*?),"}],)
    env_var = {"RUN_ID": os.environ.get("RUN_ID", "Unknown"), "SAGEMAKER_PROGRAM": "sage-train.sh"}
    telegraf_host = os.environ.get("TELEGRAF_HOST", None)
    if telegraf_host is not None:
        env_var["TELEGRAF_HOST"] = telegraf_host
        env_var["TELEGRAF_PORT"] = os.environ.get("TELEGRAF_PORT", "8092")
    max_memory_steps = os.environ.get("MAX_MEMORY_STEPS", "")
    if max_memory_steps.isdigit():
        env_var["MAX_MEMORY_STEPS"] = max_memory_steps
    if instance_type == "local_gpu":
        sagemaker_cuda_visible_devices = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        if len(sagemaker_cuda_visible_devices) > 0:
            env_var["CUDA_VISIBLE_DEVICES"] = sagemaker_cuda_visible_devices

    estimator = Estimator(
        sagemaker_session=sage_session,
        role="aaa/",  # the real one's way past the SDK's role validation
        instance_type=instance_type,
        instance_count=1,
        output_path=s3_output_path,
        image_uri=sagemaker_image,
        hyperparameters=hyperparameters,
        max_run=JOB_DURATION_S,
        metric_definitons=model_metrics,  # (sic) as the real one passes it; the SDK accepts and ignores it
        environment=env_var,
    )
    # Blocks while compose runs the sibling.
    estimator.fit(job_name=job_name, wait=True)


if __name__ == "__main__":
    log_network_use()
    main()
