"""session.insight.causes and how the live view, `watch`, `doctor` and the dashboard use it: the lines a failing
run prints (as TensorFlow, botocore and the simulator print them; the module cites where each comes from) name
their cause; ordinary lines name nothing."""

from __future__ import annotations

import pytest

from session.insight.causes import HANDSHAKE_WARN_S, symptom_of, worth_reporting
from session.insight.diagnosis import Diagnosis, diagnose, render
from session.insight.live import LiveState, find_stalls

FAILING = [
    # TensorFlow 2's allocator on the trainer (tensorflow/core/common_runtime/bfc_allocator.cc, op_kernel.cc)
    ("gpu-memory", "2026-03-11 08:30:01.5: W tensorflow/core/framework/op_kernel.cc:1830] OP_REQUIRES failed at "
                   "conv_ops.cc:684 : RESOURCE_EXHAUSTED: OOM when allocating tensor with shape[64,32,40,80]"),
    ("gpu-memory", "E tensorflow/stream_executor/cuda/cuda_driver.cc:735] failed to allocate 14.56G (15634726912 "
                   "bytes) from device: CUDA_ERROR_OUT_OF_MEMORY: out of memory"),
    ("gpu-memory", "tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating tensor"),
    # botocore (botocore/exceptions.py) as the simulator's S3 client passes it on (simapp s3_client.py)
    ("storage-endpoint", '{"simapp_exception": {"message": "Exception in downloading file (s3bucket: bucket s3_key: '
                         'rl-1/ip/ip.json): Could not connect to the endpoint URL: \\"http://minio:9000/bucket\\""}}'),
    ("storage-endpoint", "botocore.exceptions.EndpointConnectionError: Could not connect to the endpoint URL: "
                         "\"http://minio:9000/bucket?list-type=2\""),
    ("storage-endpoint", "Issue with your current VPC stack and IAM roles.                You might need to reset"),
    ("storage-credentials", "botocore.exceptions.ClientError: An error occurred (InvalidAccessKeyId) when calling the "
                            "ListObjectsV2 operation: The Access Key Id you provided does not exist in our records."),
    ("storage-credentials", "An error occurred (SignatureDoesNotMatch) when calling the GetObject operation"),
    ("storage-credentials", "botocore.exceptions.NoCredentialsError: Unable to locate credentials"),
    ("storage-bucket", "An error occurred (NoSuchBucket) when calling the ListObjectsV2 operation: The specified "
                       "bucket does not exist"),
    ("storage-access", "An error occurred (AccessDenied) when calling the PutObject operation: Access Denied "
                       "(s3 bucket deepracer-abc)"),
    # the simulator's ip_config.py and deepracer_memory.py
    ("handshake", "Waiting for SageMaker Redis server IP: Time elapsed: 240 seconds"),
    ("handshake", '{"simapp_exception": {"message": "Timed out while attempting to retrieve the Redis IP"}}'),
    ("handshake", "Redis connection error: Error 111 connecting to 10.0.1.5:6379. Connection refused."),
]
ORDINARY = [
    "SIM_TRACE_LOG:0,12,3.1,0.6,-8.1,-10.0,1.0,5,0.5,False,True,8.2,4,17.7,21.3,in_progress,0.0,0,1741682001.2",
    "S3 bucket: deepracer-abc",
    "[s3] Successfully downloaded ip config from                  s3 key rl-1/ip/ip.json to local ./custom_files.",
    "Training> Name=main_level/agent, Worker=0, Episode=20, Total reward=8.69, Steps=397, Training iteration=0",
    "Checkpoint> Saving in path=['./checkpoint_sagemaker/agent/15_Step-10693.ckpt']",
    "2026 I tensorflow/core/common_runtime/gpu/gpu_device.cc:1525] Created device with 14700 MB memory",
    "Connected to the trainer's Redis at 10.0.1.5:6379",
]


@pytest.mark.parametrize("kind,line", FAILING, ids=[f"{k}-{i}" for i, (k, _) in enumerate(FAILING)])
def test_each_failing_line_names_its_kind_and_a_fix(kind, line):
    symptom = symptom_of(line)
    assert symptom is not None and symptom.kind == kind
    assert symptom.cause and symptom.evidence == line.strip()[:200]


@pytest.mark.parametrize("line", ORDINARY)
def test_ordinary_lines_name_nothing(line):
    assert symptom_of(line) is None


def test_a_worker_that_has_waited_a_little_is_not_news_but_one_that_waits_long_is():
    early = symptom_of("Waiting for SageMaker Redis server IP: Time elapsed: 5 seconds")
    late = symptom_of(f"Waiting for SageMaker Redis server IP: Time elapsed: {HANDSHAKE_WARN_S} seconds")
    assert early is not None and early.waited_s == 5 and not worth_reporting(early)
    assert late is not None and worth_reporting(late)


def test_the_live_view_names_the_gpu_running_out_first_and_a_handshake_until_the_worker_drives():
    live = LiveState()
    live.trainer_line("Training> Name=main_level/agent, Worker=0, Episode=1, Total reward=1.0, Steps=20, "
                      "Training iteration=0", 100.0)
    live.trainer_line(FAILING[1][1], 101.0)
    live.worker_line(1, "Waiting for SageMaker Redis server IP: Time elapsed: 300 seconds", 101.0)
    stalls = live.snapshot(102.0).stalls
    assert [(s.kind, s.subject) for s in stalls[:2]] == [("gpu-memory", "trainer"), ("handshake", "worker 1")]
    assert stalls[1].message.endswith("(waited 5 min)")
    live.worker_line(1, ORDINARY[0], 103.0)  # it got the address and drives
    assert [s.kind for s in live.snapshot(104.0).stalls if s.subject == "worker 1"] == []
    snapshot = live.snapshot(105.0)
    assert find_stalls(snapshot.trainer, snapshot.workers, 105.0)[0].kind == "gpu-memory"


def test_doctor_says_each_finding_with_its_cause_and_nothing_when_the_logs_are_clean():
    from datetime import datetime, timezone

    from session.engine.containers import ContainerInfo

    started = datetime.fromtimestamp(1000.0, timezone.utc)
    trainer = ContainerInfo("a" * 64, "deepracer-7-trainer", "img", "trainer", "7", None, "p", "running",
                            started_at=started)
    worker = ContainerInfo("b" * 64, "deepracer-7-worker-1", "img", "worker", "7", 1, "p", "running",
                           started_at=started)
    logs = {trainer.id: "Training> starting\n", worker.id: FAILING[6][1] + "\n"}
    found = diagnose([trainer, worker], lambda c: logs[c.id], 1010.0, run="7")
    assert isinstance(found, Diagnosis) and not found.ok
    assert [(f.kind, f.subject) for f in found.findings] == [("storage-credentials", "worker 1")]
    assert found.as_dict()["findings"][0]["cause"].startswith("storage refused the keys")
    lines = render(found)
    assert lines[0] == "run 7: 1 finding(s)" and lines[1].startswith("  FAIL  worker 1: botocore.exceptions")
    clean = diagnose([trainer, worker], lambda c: "Training> starting\n", 1010.0, run="7")
    assert clean.ok and render(clean) == ["run 7: 2 containers, no failure in their logs"]
    assert render(diagnose([], lambda c: "", 1010.0)) == ["run: no training or evaluation containers here: "
                                                          "nothing to diagnose"]
