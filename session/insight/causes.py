"""Failures a training run's logs name, with their likely cause and the fix: the lines the simulator, TensorFlow and
botocore print when the GPU runs out of memory, storage cannot be reached or refuses the keys, or the trainer/
worker handshake never completes. Pure: a line in, a Symptom (or None) out; session.insight.live keeps the newest
of each kind per container and turns them into stalls, so `watch`, `doctor` and the dashboard name the same cause.

Where each pattern comes from:
- GPU memory: TensorFlow's allocator and CUDA driver errors (`ResourceExhaustedError` / "OOM when allocating
  tensor", tensorflow/core/framework/op_kernel.cc and common_runtime/bfc_allocator.cc; "failed to allocate ... from
  device: CUDA_ERROR_OUT_OF_MEMORY", stream_executor/cuda/cuda_driver.cc), as the trainer's SageMaker container
  logs them.
- Storage: botocore's messages (botocore/exceptions.py: EndpointConnectionError "Could not connect to the endpoint
  URL", NoCredentialsError "Unable to locate credentials"; S3's error codes InvalidAccessKeyId,
  SignatureDoesNotMatch, NoSuchBucket, AccessDenied in a ClientError), which the simulator's S3 client wraps in its
  fatal line (simapp bundle/markov/boto/s3/s3_client.py: "Exception in downloading file ...", "Unable to list
  objects", "Issue with your current VPC stack and IAM roles" on a connect timeout).
- Handshake: a worker waiting for the trainer's Redis address (simapp bundle/markov/boto/s3/files/ip_config.py:
  "Waiting for SageMaker Redis server IP: Time elapsed: N seconds" every 5 s, "Timed out while attempting to
  retrieve the Redis IP" after SAGEMAKER_WAIT_TIME, 1200 s) and Redis itself refusing (deepracer_memory.py "Redis
  connection error").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

HANDSHAKE_WARN_S = 180  # a worker that has waited this long for ip.json is named (the simulator gives up at 1200)
SIMULATOR_WAIT_S = 1200  # SAGEMAKER_WAIT_TIME, simapp bundle/markov/boto/s3/constants.py


@dataclass(frozen=True)
class Symptom:
    kind: str  # gpu-memory | storage-endpoint | storage-credentials | storage-bucket | storage-access | handshake
    evidence: str  # the line, shortened
    cause: str  # the likely cause and the fix, one line
    waited_s: Optional[int] = None  # handshake: how long the worker has waited for the trainer's address


_GPU = re.compile(r"CUDA_ERROR_OUT_OF_MEMORY|ResourceExhaustedError|OOM when allocating tensor|"
                  r"CUDA out of memory|failed to allocate [\d.]+\w? \(\d+ bytes\) from device")
_ENDPOINT = re.compile(r"Could not connect to the endpoint URL|EndpointConnectionError|ConnectTimeoutError|"
                       r"Issue with your current VPC stack and IAM roles")
_CREDENTIALS = re.compile(r"InvalidAccessKeyId|SignatureDoesNotMatch|Unable to locate credentials|"
                          r"NoCredentialsError|ExpiredToken|InvalidToken|The AWS Access Key Id you provided")
_BUCKET = re.compile(r"NoSuchBucket|The specified bucket does not exist")
_ACCESS = re.compile(r"\bAccessDenied\b|\bAccess Denied\b")
_WAITING = re.compile(r"Waiting for SageMaker Redis server IP: Time elapsed: (\d+) seconds")
_TIMED_OUT = re.compile(r"Timed out while attempting to retrieve the Redis IP")
_REDIS = re.compile(r"Redis connection error|Failed to connect to the trainer's Redis")
_WORTH_A_LOOK = re.compile(r"CUDA|OOM|Resource|allocate|endpoint|Endpoint|Connect|VPC|Access|Signature|credentials|"
                           r"Credentials|Token|Bucket|bucket|Redis")


def symptom_of(line: str) -> Optional[Symptom]:
    """The failure `line` names, if it names one of the kinds above."""
    if line.startswith("SIM_TRACE_LOG") or not _WORTH_A_LOOK.search(line):  # the bulk of a log, at once
        return None
    evidence = line.strip()[:200]
    if _GPU.search(line):
        return Symptom("gpu-memory", evidence, "the GPU ran out of memory: another process holds it (nvidia-smi "
                       "lists them) or the model does not fit; stop other GPU work, or lower batch_size in "
                       "hyperparameters.json, then start again")
    if _ENDPOINT.search(line):
        return Symptom("storage-endpoint", evidence, "storage cannot be reached: MinIO not running or "
                       "S3_ENDPOINT_URL/DR_MINIO_URL wrong (azure/local), or no route to S3 (AWS: the VPC's way out); "
                       "`deepracer doctor` checks it")
    if _CREDENTIALS.search(line):
        return Symptom("storage-credentials", evidence, "storage refused the keys: MinIO's keys in system.env do "
                       "not match the server's, or (AWS) the instance role is missing or its IMDS hop limit is 1; "
                       "`deepracer doctor` checks it")
    if _BUCKET.search(line):
        return Symptom("storage-bucket", evidence, "the bucket does not exist: DR_LOCAL_S3_BUCKET (run.env) names "
                       "another one than the host's")
    if _ACCESS.search(line) and re.search(r"[Ss]3|bucket|Bucket|object", line):
        return Symptom("storage-access", evidence, "storage refused access: the model prefix is outside what the "
                       "host's role may write (the stack scopes it to the working bucket)")
    if _TIMED_OUT.search(line):
        return Symptom("handshake", evidence, "the trainer never published its Redis address (ip/ip.json): it did "
                       "not start, failed first (`deepracer logs trainer`), or the worker reads another prefix",
                       waited_s=SIMULATOR_WAIT_S)
    waiting = _WAITING.search(line)
    if waiting:
        return Symptom("handshake", evidence, "the worker waits for the trainer's Redis address (ip/ip.json under "
                       "the model prefix): the trainer has not started or failed (`deepracer logs trainer`), or "
                       "trainer and worker use different prefixes", waited_s=int(waiting.group(1)))
    if _REDIS.search(line):
        return Symptom("handshake", evidence, "the worker and the trainer's Redis (port 6379) cannot talk: the "
                       "trainer restarted or the network sagemaker-local is broken; stop and start the run again")
    return None


def worth_reporting(symptom: Symptom) -> bool:
    """A handshake still within its usual wait is not news; everything else is."""
    return symptom.kind != "handshake" or symptom.waited_s is None or symptom.waited_s >= HANDSHAKE_WARN_S
