"""`deepracer models ...` through the CLI: the real model folders of the shared data in moto's S3 server over
HTTP; `import-droa` against the local server that stands in for a DeepRacer-on-AWS install (test_droa)."""

from __future__ import annotations

import json
import tarfile
import uuid
from pathlib import Path

import boto3
import pytest

import session.models.droa
from session.cli.main import main
from tests.session.models.test_droa import PASSWORD, USER, droa, factory, upload_bucket  # noqa: F401 - fixtures
from tests.session.models.test_models import DROA_ROOT, fill_real_models


@pytest.fixture(scope="module")
def real_bucket(s3_server, tmp_path_factory):
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    bucket = f"cli-models-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    return fill_real_models(s3, bucket, s3_server, tmp_path_factory.mktemp("params"))


@pytest.fixture()
def workdir(tmp_path: Path, s3_server: str, real_bucket, monkeypatch) -> Path:
    # DR_CLOUD=remote: the user's own S3 server (moto here), so no MinIO is started.
    (tmp_path / "system.env").write_text(
        f"DR_CLOUD=remote\nDR_REMOTE_MINIO_URL={s3_server}\nDR_LOCAL_S3_BUCKET={real_bucket.bucket}\n"
        "DR_SIMAPP_VERSION=6.0.4-gpu\nDR_LOCAL_ACCESS_KEY_ID=testing\nDR_LOCAL_SECRET_ACCESS_KEY=testing\n")
    (tmp_path / "run.env").write_text("DR_LOCAL_S3_MODEL_PREFIX=rl-drfc-1\n")
    monkeypatch.setenv("DR_SYSTEM_ENV", str(tmp_path / "system.env"))
    monkeypatch.setenv("DR_RUN_ENV", str(tmp_path / "run.env"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_list_and_show(workdir: Path, real_bucket, capsys):
    assert main(["models", "list", "--json"]) == 0
    listed = {m["prefix"]: m for m in json.loads(capsys.readouterr().out)}
    assert set(real_bucket.models) <= set(listed)
    assert main(["models", "list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["PREFIX", "ITER", "LAST", "BEST"]
    assert any(line.startswith("rl-drfc-1 ") for line in table)

    assert main(["models", "show", "rl-drfc-1"]) == 0
    shown = capsys.readouterr().out
    assert "reward function  sha256 " in shown and "checkpoint       " in shown


def test_export_to_a_folder_then_refuse_it_again(workdir: Path, capsys):
    target = workdir / "export"
    assert main(["models", "export", "rl-drfc-1", "--to", str(target), "--checkpoint", "best"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("exported ") and "checksums verified" in out
    assert {"model_metadata.json", "reward_function.py", "training_params.yaml"} <= {p.name for p in target.iterdir()}
    assert (target / "ip" / "hyperparameters.json").is_file() and (target / "model" / ".coach_checkpoint").is_file()

    assert main(["models", "export", "rl-drfc-1", "--to", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(target) in err and "--overwrite" in err


def test_car_package(workdir: Path, capsys):
    assert main(["models", "car-package", "rl-drfc-1", "--out", "car.tar.gz"]) == 0
    assert capsys.readouterr().out.startswith("wrote car.tar.gz")
    with tarfile.open(workdir / "car.tar.gz") as tar:
        assert sorted(n for n in tar.getnames() if not tar.getmember(n).isdir()) == ["agent/model.pb", "model_metadata.json"]


def test_download_brings_a_model_in_as_a_pretrained_base(workdir: Path, real_bucket, capsys):
    source = f"s3://{real_bucket.bucket}/rl-drfc-3"
    assert main(["models", "download", source, "copied-base"]) == 0
    out = capsys.readouterr().out
    assert "DR_LOCAL_S3_PRETRAINED_PREFIX=copied-base" in out
    assert real_bucket.storage().prefix_has_objects("copied-base/model/")
    assert main(["models", "download", source, "copied-base"]) == 2  # not over an existing prefix


def test_unknown_model_is_one_line(workdir: Path, capsys):
    assert main(["models", "show", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-model" in err


def test_import_droa_exports_and_imports(workdir: Path, droa, factory, monkeypatch, capsys):
    # The stand-in DRoA's Cognito and S3 endpoints: the client's factory points boto3 at them.
    monkeypatch.setattr(session.models.droa, "DroaClient",
                        lambda url, user, password, **kw: DroaClientWithFactory(url, user, password, factory))
    monkeypatch.setenv(session.models.droa.PASSWORD_ENV, PASSWORD)
    assert main(["models", "import-droa", f"{DROA_ROOT}/sagemaker-artifacts", "--url", droa.url,
                 "--username", USER, "--name", "my-model"]) == 0
    out, err = capsys.readouterr()
    assert "my-model: DRoA model " in out
    assert PASSWORD not in out + err

    # DRoA's own validation message reaches the user as one line
    message = "Invalid track configuration. Track reinvent_base is not available in direction COUNTER_CLOCKWISE."
    droa.api_override = lambda method, path: ((400, {"x-amzn-ErrorType": "BadRequestError"},
                                               json.dumps({"message": message}).encode())
                                              if path.endswith("/importmodel") else None)
    assert main(["models", "import-droa", "rl-drfc-1", "--url", droa.url, "--username", USER,
                 "--name", "other-model"]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and message in err
    assert PASSWORD not in out + err


def test_import_droa_refuses_what_droa_would_before_uploading(workdir: Path, real_bucket, droa, factory, s3_client,
                                                              upload_bucket, monkeypatch, capsys):
    monkeypatch.setattr(session.models.droa, "DroaClient",
                        lambda url, user, password, **kw: DroaClientWithFactory(url, user, password, factory))
    monkeypatch.setenv(session.models.droa.PASSWORD_ENV, PASSWORD)
    assert main(["models", "download", f"s3://{real_bucket.bucket}/rl-drfc-1", "banned-words"]) == 0
    s3 = real_bucket.storage()
    reward = s3.get_bytes("banned-words/reward_function.py")
    s3.put_bytes("banned-words/reward_function.py", b"import os\n" + reward + b"# save the line for later\n")
    capsys.readouterr()

    assert main(["models", "import-droa", "banned-words", "--url", droa.url, "--username", USER]) == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert "DRoA would refuse this import (4 findings; nothing was uploaded)" in lines[0]
    assert any("flake8 E302 expected 2 blank lines" in line for line in lines[1:])
    assert any("imports os; DRoA allows only math, random, numpy, scipy, shapely" in line for line in lines[1:])
    assert any("contains 'save'" in line for line in lines[1:])
    assert not any(seen.path.startswith("/prod/") for seen in droa.requests)  # no API call, no upload
    assert s3_client.list_objects_v2(Bucket=upload_bucket).get("KeyCount", 0) == 0


def test_import_droa_names_the_network_when_waf_refuses_the_host(workdir: Path, droa, factory, s3_client,
                                                                 upload_bucket, monkeypatch, capsys):
    monkeypatch.setattr(session.models.droa, "DroaClient",
                        lambda url, user, password, **kw: DroaClientWithFactory(url, user, password, factory))
    monkeypatch.setenv(session.models.droa.PASSWORD_ENV, PASSWORD)
    droa.waf_blocks_host = True
    assert main(["models", "import-droa", f"{DROA_ROOT}/sagemaker-artifacts", "--url", droa.url,
                 "--username", USER, "--name", "from-azure"]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "AWS WAF blocks hosting-provider/anonymous IPs, e.g. an Azure VM" in err
    assert s3_client.list_objects_v2(Bucket=upload_bucket).get("KeyCount", 0) == 0


class DroaClientWithFactory(session.models.droa.DroaClient):  # the real client, bound before the test replaces the name
    def __init__(self, url, user, password, factory):
        super().__init__(url, user, password, client_factory=factory)
