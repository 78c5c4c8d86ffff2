"""`increment` against real run.env files and a real S3 API (moto's server over HTTP)."""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import pytest

from session.core.config import load_config
from session.run.increment import IncrementError, increment, next_prefix
from session.storage.s3 import Storage

SYSTEM = "DR_CLOUD=aws\nDR_LOCAL_S3_BUCKET={bucket}\nDR_SIMAPP_VERSION=6.0.4-gpu\n"
RUN = """# my run
DR_WORLD_NAME=reInvent2019_track   # the track
DR_LOCAL_S3_MODEL_PREFIX=rl-deepracer-3
DR_LOCAL_S3_PRETRAINED=False
"""


@pytest.mark.parametrize("prefix, expected", [
    ("rl-deepracer-3", "rl-deepracer-4"), ("model-009", "model-010"), ("model", "model-1"),
    ("m9", "m10"), ("2024-reinvent-v1", "2024-reinvent-v2"),
])
def test_next_prefix_bumps_the_trailing_serial(prefix: str, expected: str):
    assert next_prefix(prefix) == expected


@pytest.fixture()
def setup(tmp_path: Path, s3_server: str):
    bucket = f"deepracer-aws-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    (tmp_path / "system.env").write_text(SYSTEM.format(bucket=bucket))
    (tmp_path / "run.env").write_text(RUN)
    storage = Storage(bucket, endpoint_url=s3_server)
    return tmp_path, storage


def load(tmp_path: Path):
    return load_config(tmp_path / "run.env", tmp_path / "system.env", environ={}).run


def test_increment_points_pretrained_at_the_old_model_and_keeps_comments(setup):
    tmp_path, storage = setup
    storage.put_text("rl-deepracer-3/model/5_Step-1000.ckpt.index", "x")
    result = increment(tmp_path / "run.env", load(tmp_path), storage, checkpoint="best")
    assert (result.old_prefix, result.new_prefix) == ("rl-deepracer-3", "rl-deepracer-4")
    run = load(tmp_path)
    assert run.local_s3_model_prefix == "rl-deepracer-4" and run.local_s3_pretrained is True
    assert run.local_s3_pretrained_prefix == "rl-deepracer-3" and run.local_s3_pretrained_checkpoint == "best"
    text = (tmp_path / "run.env").read_text()
    assert text.startswith("# my run\n") and "   # the track" in text
    assert result.backup.read_text() == RUN
    assert storage.exists("rl-deepracer-3/model/5_Step-1000.ckpt.index")  # the old model is only read


def test_increment_skips_prefixes_that_already_hold_objects(setup):
    tmp_path, storage = setup
    storage.put_text("rl-deepracer-3/model/5_Step-1000.ckpt.index", "x")
    storage.put_text("rl-deepracer-4/training_params.yaml", "someone else's")
    assert increment(tmp_path / "run.env", load(tmp_path), storage).new_prefix == "rl-deepracer-5"


def test_increment_refuses_a_model_without_checkpoints_and_changes_nothing(setup):
    tmp_path, storage = setup
    with pytest.raises(IncrementError, match=r"DR_LOCAL_S3_MODEL_PREFIX: expected a trained model at s3://.*got no"):
        increment(tmp_path / "run.env", load(tmp_path), storage)
    assert (tmp_path / "run.env").read_text() == RUN
    assert not (tmp_path / "run.env.bak").exists()


def test_explicit_prefix_must_be_empty_and_new(setup):
    tmp_path, storage = setup
    storage.put_text("rl-deepracer-3/model/5_Step-1000.ckpt.index", "x")
    storage.put_text("taken/model/1_Step-1.ckpt.index", "x")
    with pytest.raises(IncrementError, match="--prefix: expected an empty prefix, got 'taken'"):
        increment(tmp_path / "run.env", load(tmp_path), storage, prefix="taken")
    with pytest.raises(IncrementError, match="--prefix: expected a prefix other than the current model"):
        increment(tmp_path / "run.env", load(tmp_path), storage, prefix="rl-deepracer-3")
    assert increment(tmp_path / "run.env", load(tmp_path), storage, prefix="fresh").new_prefix == "fresh"


def test_bad_checkpoint_value_is_named(setup):
    tmp_path, storage = setup
    with pytest.raises(IncrementError, match="--checkpoint: expected last or best \\(the simulator starts from no "
                                             "other\\), got 'newest'"):
        increment(tmp_path / "run.env", load(tmp_path), storage, checkpoint="newest")


def test_a_checkpoint_number_says_how_to_continue_from_it_and_changes_nothing(setup):
    # simapp 6.0.4 starts from best, else last: run.env with a number would silently train from the last one.
    tmp_path, storage = setup
    before = (tmp_path / "run.env").read_text()
    with pytest.raises(IncrementError) as caught:
        increment(tmp_path / "run.env", load(tmp_path), storage, checkpoint="2")
    assert "`deepracer models export rl-deepracer-3 --checkpoint 2 --to s3://BUCKET/rl-deepracer-3-checkpoint-2`" \
        in str(caught.value) and "DR_LOCAL_S3_PRETRAINED_CHECKPOINT=last" in str(caught.value)
    assert (tmp_path / "run.env").read_text() == before
