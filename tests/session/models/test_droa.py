"""The DRoA client (session/models/droa.py) against a stand-in for DeepRacer on AWS.

The server these tests talk to is NOT DRoA: `droa_standin.DroaStandIn` stands in for an install (its env.js,
Cognito's login endpoints, the signed API with a few of DRoA's validation rules); the upload bucket is a real
S3 API (moto's server, `s3_server`). See droa_standin.py for what it checks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import traceback
from pathlib import Path

import pytest
import yaml

from session.models.droa import (
    MAX_IMPORT_BYTES,
    PASSWORD_ENV,
    DroaClient,
    DroaError,
    check_model_name,
    droa_model_name,
    droa_training_params,
    parse_env_js,
    read_password,
)
from tests.session.droa_standin import (
    CLIENT_ID,
    IDENTITY_POOL_ID,
    REGION,
    STAGE,
    USER_POOL_ID,
    DroaStandIn,
    verify_sigv4,
)
from tests.shared_data import LOGS

USER = "racer1"
PASSWORD = "Correct-Horse-Battery-9!"
NEWBIE, NEWBIE_PASSWORD = "newbie", "Temporary-Pass-1!"
LONER, LONER_PASSWORD = "loner", "Lonely-Pass-2!"
DRFC_MODEL = LOGS / "drfc-2022-single-worker"

# training_params.yaml the way DRfC (and session/run/training_params.py) writes it: strings, explicit start.
TRAINING_PARAMS = """---
AWS_REGION: us-east-1
JOB_TYPE: TRAINING
METRICS_S3_BUCKET: my-training-bucket
METRICS_S3_OBJECT_KEY: rl-deepracer-1/metrics/TrainingMetrics.json
MODEL_METADATA_FILE_S3_KEY: rl-deepracer-1/model/model_metadata.json
REWARD_FILE_S3_KEY: rl-deepracer-1/reward_function.py
SAGEMAKER_SHARED_S3_BUCKET: my-training-bucket
SAGEMAKER_SHARED_S3_PREFIX: rl-deepracer-1
SIMTRACE_S3_BUCKET: my-training-bucket
SIMTRACE_S3_PREFIX: rl-deepracer-1
BODY_SHELL_TYPE: deepracer
CAR_COLOR: Red
CAR_NAME: FastCar
RACE_TYPE: TIME_TRIAL
WORLD_NAME: {world}
DISPLAY_NAME: racer1
RACER_NAME: racer1
REVERSE_DIR: 'False'
ALTERNATE_DRIVING_DIRECTION: 'False'
CHANGE_START_POSITION: 'True'
ROUND_ROBIN_ADVANCE_DIST: '0.05'
MIN_EVAL_TRIALS: '5'
"""


# --- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture
def upload_bucket(make_bucket) -> str:
    return make_bucket("droa-upload")


@pytest.fixture
def droa(s3_client, upload_bucket):
    standin = DroaStandIn(s3_client=s3_client, upload_bucket=upload_bucket,
                          users={USER: PASSWORD, NEWBIE: NEWBIE_PASSWORD, LONER: LONER_PASSWORD},
                          new_password_required={NEWBIE}, users_without_group={LONER}).start()
    yield standin
    standin.stop()


@pytest.fixture
def factory(droa, s3_server):
    """boto3 clients pointed at the stand-in (Cognito) and moto (S3); records what each was made with."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    calls = []

    def make(service, region, credentials):
        calls.append((service, region, credentials))
        if credentials is None:
            session = boto3.session.Session(region_name=region)
            config = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
        else:
            session = boto3.session.Session(aws_access_key_id=credentials.access_key,
                                            aws_secret_access_key=credentials.secret_key,
                                            aws_session_token=credentials.session_token, region_name=region)
            config = Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1})
        return session.client(service, endpoint_url=s3_server if service == "s3" else droa.url, config=config)

    make.calls = calls
    return make


def client(droa, factory, user=USER, password=PASSWORD, **options) -> DroaClient:
    return DroaClient(droa.url, user, password, client_factory=factory, **options)


def write_model_folder(root: Path, world: str = "reInvent2019_wide_cw") -> dict[str, bytes]:
    """An exported model folder in the layout DRoA's import reads: real metadata and hyperparameters from a DRfC
    run, a made-up checkpoint (DRoA's validation of it happens later, in its workflow)."""
    metadata = (DRFC_MODEL / "model" / "model_metadata.json").read_bytes()
    files = {
        "model_metadata.json": metadata,
        "reward_function.py": b"def reward_function(params):\n    return float(params['all_wheels_on_track'])\n",
        "training_params.yaml": TRAINING_PARAMS.format(world=world).encode(),
        "ip/hyperparameters.json": (DRFC_MODEL / "ip" / "hyperparameters.json").read_bytes(),
        "model/model_metadata.json": metadata,
        "model/.coach_checkpoint": b"10_Step-2500.ckpt",
        "model/deepracer_checkpoints.json": json.dumps({
            "best_checkpoint": {"name": "10_Step-2500.ckpt", "time_stamp": 1714557600.0, "avg_eval_metric": 71.5},
            "last_checkpoint": {"name": "10_Step-2500.ckpt", "time_stamp": 1714557600.0, "avg_eval_metric": 71.5},
        }).encode(),
        "model/10_Step-2500.ckpt.index": bytes(range(256)) * 2,
        "model/10_Step-2500.ckpt.data-00000-of-00001": hashlib.sha256(b"weights").digest() * 4000,
        "model/10_Step-2500.ckpt.meta": b"\x0a\x0bmeta graph" * 100,
        "model/model_10.pb": b"\x08\x01frozen graph" * 500,
        "metrics/training/training-20260501100000-rl-deepracer-1.json": b'{"metrics": []}',
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def uploaded(s3_client, bucket: str) -> dict[str, bytes]:
    keys = [o["Key"] for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]
    return {key: s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


# --- env.js -------------------------------------------------------------------------------------------------------


def test_env_js_as_deployed_is_read():
    # DRoA's deployment writes `window.EnvironmentConfig = ${JSON.stringify(config)};`
    text = ('window.EnvironmentConfig = {"apiEndpointUrl":"https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/'
            'prod/","userPoolId":"eu-west-1_Xy9Zw8Vu7","userPoolClientId":"3abc4def5ghi6jkl7mno8pqr9s",'
            '"identityPoolId":"eu-west-1:0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d","region":"eu-west-1",'
            '"uploadBucketName":"deepracer-on-aws-uploadbucket-1a2b3c4d5e6f"};\n')
    config = parse_env_js(text, "https://d111111abcdef8.cloudfront.net/env.js")
    assert config.site_url == "https://d111111abcdef8.cloudfront.net"
    assert config.region == "eu-west-1"
    assert config.user_pool_id == "eu-west-1_Xy9Zw8Vu7"
    assert config.user_pool_client_id == "3abc4def5ghi6jkl7mno8pqr9s"
    assert config.identity_pool_id == "eu-west-1:0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
    assert config.api_endpoint_url == "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/prod/"
    assert config.upload_bucket == "deepracer-on-aws-uploadbucket-1a2b3c4d5e6f"
    assert config.login_provider == "cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Xy9Zw8Vu7"


def test_env_js_written_as_javascript_is_read():
    text = """/* generated at deploy time */
    var unrelated = {a: 1};
    window['EnvironmentConfig'] = {
      region: 'us-west-2',            // the stack's region
      userPoolId: "us-west-2_AbCdEfGhI",
      userPoolClientId: '1a2b3c4d5e6f7g8h9i0j',
      identityPoolId: 'us-west-2:12345678-90ab-cdef-1234-567890abcdef',
      apiEndpointUrl: `https://abc123.execute-api.us-west-2.amazonaws.com/prod/`,
      uploadBucketName: 'deepracer-upload-\\u0062ucket',
      features: {liveRace: true, maxModels: 10, ratio: .5, tags: ['a', "b, c",], nothing: null, gone: undefined},
      "quoted key": 'it\\'s',
    };
    window.other = 1;
    """
    config = parse_env_js(text)
    assert (config.region, config.user_pool_id, config.identity_pool_id) == (
        "us-west-2", "us-west-2_AbCdEfGhI", "us-west-2:12345678-90ab-cdef-1234-567890abcdef")
    assert config.api_endpoint_url == "https://abc123.execute-api.us-west-2.amazonaws.com/prod/"
    assert config.upload_bucket == "deepracer-upload-bucket"


def test_env_js_without_the_settings_says_which_are_missing():
    with pytest.raises(DroaError) as info:
        parse_env_js('window.EnvironmentConfig = {"region": "us-east-1", "userPoolId": "us-east-1_x", '
                     '"apiEndpointUrl": ""};', "https://x.example/env.js")
    message = str(info.value)
    assert "\n" not in message
    assert "userPoolClientId, identityPoolId, apiEndpointUrl, uploadBucketName" in message
    assert "https://x.example/env.js" in message


@pytest.mark.parametrize("text, expected", [
    ("<!doctype html><html><body>app</body></html>", "found an HTML page"),
    ("window.EnvironmentConfig = {region: 'us-east-1', userPoolId: };", "expected a value at line 1"),
    ("window.EnvironmentConfig = {region: 'us-east-1'\n  userPoolId: 'x'};", "expected ',' or '}' at line 2"),
    ("window.EnvironmentConfig = ['us-east-1'];", "is not an object"),
])
def test_env_js_that_cannot_be_read_is_one_line(text, expected):
    with pytest.raises(DroaError) as info:
        parse_env_js(text)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_site_that_is_not_droa_is_named(droa, factory):
    droa.env_js = ""  # CloudFront answers index.html for a file it does not have
    with pytest.raises(DroaError) as info:
        client(droa, factory).list_models()
    assert f"{droa.url}/env.js does not set window.EnvironmentConfig (found an HTML page)" in str(info.value)
    assert not any(seen.target for seen in droa.requests)  # no login was tried


def test_unreachable_url_is_one_line(factory):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DroaError) as info:
        DroaClient(f"http://127.0.0.1:{port}/", USER, PASSWORD, client_factory=factory, timeout=5).list_models()
    assert str(info.value).startswith(f"cannot reach DRoA at http://127.0.0.1:{port} (")
    assert "\n" not in str(info.value)


# --- login ----------------------------------------------------------------------------------------------------------


def test_login_and_list_models_across_pages(droa, factory):
    names = ["first", "second", "third"]
    ids = [droa.add_model(name) for name in names]
    session = client(droa, factory)
    models = session.list_models()
    assert [m.model_id for m in models] == ids and [m.name for m in models] == names
    assert {m.status for m in models} == {"READY"}
    # the three calls Cognito saw, with the settings env.js gave
    targets = [seen.target for seen in droa.requests if seen.target]
    assert targets == ["AWSCognitoIdentityProviderService.InitiateAuth", "AWSCognitoIdentityService.GetId",
                       "AWSCognitoIdentityService.GetCredentialsForIdentity"]
    login = json.loads(next(s.body for s in droa.requests if s.target.endswith("InitiateAuth")))
    assert login["AuthFlow"] == "USER_PASSWORD_AUTH" and login["ClientId"] == CLIENT_ID
    get_id = json.loads(next(s.body for s in droa.requests if s.target.endswith("GetId")))
    assert get_id["IdentityPoolId"] == IDENTITY_POOL_ID
    assert list(get_id["Logins"]) == [f"cognito-idp.{REGION}.amazonaws.com/{USER_POOL_ID}"]
    # two signed GETs (the stand-in pages by two), from a browser-like agent (DRoA's WAF blocks the others)
    api = [seen for seen in droa.requests if seen.path.startswith(STAGE)]
    assert [seen.path for seen in api] == [f"{STAGE}/models", f"{STAGE}/models?token=2"]
    for seen in api:
        headers = {k.lower(): v for k, v in seen.headers.items()}
        assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=ASIA")
        assert headers["user-agent"].startswith("Mozilla/5.0")
        assert headers["origin"] == droa.url


def test_signature_check_of_the_standin_can_fail(droa, factory):
    """The stand-in's own SigV4 check rejects a request whose body changed after signing."""
    session = client(droa, factory)
    session.list_models()
    seen = next(s for s in droa.requests if s.path == f"{STAGE}/models")
    assert verify_sigv4("GET", seen.path, seen.headers, b"", droa.issued) == ""
    assert "does not match" in verify_sigv4("GET", seen.path, seen.headers, b"tampered", droa.issued)
    assert "does not match" in verify_sigv4("GET", seen.path + "?token=9", seen.headers, b"", droa.issued)


def test_wrong_password_is_one_line(droa, factory):
    with pytest.raises(DroaError) as info:
        client(droa, factory, password="Not-The-Password-1").login()
    assert str(info.value) == (f"DRoA refused the login of 'racer1' at {droa.url}: Incorrect username or password "
                               f"(check the username and password, and {PASSWORD_ENV} if it is set)")


def test_unknown_user_is_one_line(droa, factory):
    with pytest.raises(DroaError) as info:
        client(droa, factory, user="nobody").login()
    assert str(info.value) == (f"DRoA at {droa.url} has no user 'nobody': use the username or e-mail address you log "
                               "in to the web app with")


def test_new_password_required_sends_the_user_to_the_web_app(droa, factory):
    with pytest.raises(DroaError) as info:
        client(droa, factory, user=NEWBIE, password=NEWBIE_PASSWORD).login()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("DRoA wants a new password for 'newbie'")
    assert f"log in once in the web app at {droa.url}" in message


def test_user_in_no_droa_group_gets_no_role(droa, factory):
    with pytest.raises(DroaError) as info:
        client(droa, factory, user=LONER, password=LONER_PASSWORD).login()
    assert "DRoA gives 'loner' no AWS role" in str(info.value)
    assert "dr-racers" in str(info.value)


def test_password_is_asked_for_only_after_env_js_was_read(droa, factory):
    asked = []

    def ask() -> str:
        asked.append(True)
        return PASSWORD

    droa.env_js = ""
    with pytest.raises(DroaError):
        client(droa, factory, password=ask).login()
    assert not asked
    droa.env_js = None
    session = client(droa, factory, password=ask)
    session.login()
    assert asked == [True]


def test_expiring_credentials_are_renewed_without_the_password(droa, factory):
    droa.credential_lifetime = 120  # under the five minutes the client keeps in hand
    session = client(droa, factory)
    droa.add_model("one")
    session.list_models()
    session.list_models()
    assert droa.logins == 1  # the password was used once
    assert droa.refreshes == 2  # and the refresh token before each later request
    refresh = [json.loads(s.body) for s in droa.requests if s.target.endswith("InitiateAuth")][1:]
    assert {r["AuthFlow"] for r in refresh} == {"REFRESH_TOKEN_AUTH"}
    assert all("PASSWORD" not in r["AuthParameters"] for r in refresh)


# --- import -----------------------------------------------------------------------------------------------------------


def test_import_uploads_exactly_the_folder_and_posts_the_import(droa, factory, s3_client, upload_bucket, tmp_path):
    folder = tmp_path / "rl-deepracer-1"
    files = write_model_folder(folder, world="reInvent2019_wide_cw")
    lines = []
    session = client(droa, factory)
    model_id = session.import_model(folder, "rl-deepracer-1", "first try", report=lines.append)

    assert droa.models[model_id]["name"] == "rl-deepracer-1"
    assert droa.imports == [{"s3Bucket": upload_bucket, "s3Path": droa.imports[0]["s3Path"],
                             "modelName": "rl-deepracer-1", "modelDescription": "first try"}]
    prefix = droa.imports[0]["s3Path"]
    assert prefix.startswith("uploads/models/") and not prefix.endswith("/")
    objects = uploaded(s3_client, upload_bucket)
    assert set(objects) == {f"{prefix}/{rel}" for rel in files}  # every file, nothing else
    for rel, data in files.items():
        if rel != "training_params.yaml":
            assert objects[f"{prefix}/{rel}"] == data, rel

    params = yaml.safe_load(objects[f"{prefix}/training_params.yaml"])
    assert params["WORLD_NAME"] == "reInvent2019_wide"
    assert params["TRACK_DIRECTION_CLOCKWISE"] is True
    assert (params["SAGEMAKER_SHARED_S3_BUCKET"], params["SAGEMAKER_SHARED_S3_PREFIX"]) == (upload_bucket, prefix)
    assert params["MODEL_METADATA_FILE_S3_KEY"] == f"{prefix}/model/model_metadata.json"
    assert params["CHANGE_START_POSITION"] == "True"  # the rest as it was, strings included
    assert (folder / "training_params.yaml").read_bytes() == files["training_params.yaml"]  # folder untouched

    # uploaded with the temporary credentials the identity pool issued
    s3_calls = [call for call in factory.calls if call[0] == "s3"]
    assert s3_calls and all(creds.access_key in droa.issued for _, _, creds in s3_calls)
    assert any("WORLD_NAME reInvent2019_wide_cw -> reInvent2019_wide" in line for line in lines)
    assert any(line.startswith(f"uploading {len(files)} files") for line in lines)


def test_import_from_a_list_of_files(droa, factory, s3_client, upload_bucket, tmp_path):
    files = write_model_folder(tmp_path / "scattered")
    mapping = {rel: tmp_path / "scattered" / rel for rel in files}
    model_id = client(droa, factory).import_model(mapping, "scattered")
    prefix = droa.imports[0]["s3Path"]
    assert "modelDescription" not in droa.imports[0]
    assert set(uploaded(s3_client, upload_bucket)) == {f"{prefix}/{rel}" for rel in files}
    assert model_id in droa.models


def test_droa_validation_message_is_surfaced(droa, factory, tmp_path):
    write_model_folder(tmp_path / "m", world="Mexico_track")
    message = "Invalid track configuration. Track Mexico_track is not available in direction COUNTER_CLOCKWISE."
    droa.api_override = lambda method, path: (_answer(400, {"message": message}, "BadRequestError")
                                              if path.endswith("/importmodel") else None)
    with pytest.raises(DroaError) as info:
        client(droa, factory).import_model(tmp_path / "m", "mexico")
    assert str(info.value) == f"DRoA rejected the import of mexico: {message}"


def _answer(status, body, error_type):
    return status, {"Content-Type": "application/json", "x-amzn-ErrorType": error_type}, json.dumps(body).encode()


# What DRoA refuses (tests/session/droa_standin.py follows its source): each case breaks one rule in one file.
# (file, change, what DRoA says, what the pre-check's line holds)
DROA_REFUSALS = {
    "banned word in a comment": (
        "reward_function.py", lambda text: text + "# load the racing line from a file\n",
        'Reward Function Validation Your code snippet contains a restricted string "load"', "'load'"),
    "module off the allow-list": (
        "reward_function.py", lambda text: "import os\n\n\n" + text.replace("float(", "float(os.sep and "),
        "Reward Function Validation The reward function contains illegal import(s): ['os']", "imports os"),
    "flake8 finding": (
        "reward_function.py", lambda text: "import math\n" + text,
        "Reward Function Validation 'math' imported but unused", "F401 'math' imported but unused"),
    "DeepRacer shell in a colour DRoA lacks": (
        "training_params.yaml", lambda text: text.replace("CAR_COLOR: Red", "CAR_COLOR: Pink"),
        "Invalid car customization. Car shell DEEPRACER is not available in color PINK.", "CAR_COLOR"),
    "track DRoA does not have": (
        "training_params.yaml", lambda text: text.replace("reInvent2019_wide_cw", "Straight_track"),
        "Invalid track configuration. Track Straight_track is not available in direction COUNTER_CLOCKWISE.",
        "WORLD_NAME"),
    "too many objects": (
        "training_params.yaml", lambda text: text.replace("RACE_TYPE: TIME_TRIAL",
                                                          "RACE_TYPE: OBJECT_AVOIDANCE\nNUMBER_OF_OBSTACLES: '7'"),
        "Number of obstacle positions is invalid.", "NUMBER_OF_OBSTACLES"),
    "SAC with episodes between training as text": (
        "ip/hyperparameters.json", lambda text: json.dumps({**json.loads(text), "num_episodes_between_training": "1"}),
        "Invalid hyperparameter number of episodes between training for SAC agent algorithm.",
        "num_episodes_between_training"),
}


def _break(folder: Path, case: str) -> None:
    rel, change, _, _ = DROA_REFUSALS[case]
    (folder / rel).write_text(change((folder / rel).read_text()))
    if rel == "ip/hyperparameters.json":  # SAC: its metadata, continuous as SAC needs
        for name in ("model_metadata.json", "model/model_metadata.json"):
            (folder / name).write_text(json.dumps({
                "action_space": {"speed": {"low": 0.5, "high": 3}, "steering_angle": {"low": -30, "high": 30}},
                "sensor": ["FRONT_FACING_CAMERA"], "neural_network": "DEEP_CONVOLUTIONAL_NETWORK_SHALLOW",
                "version": "5", "training_algorithm": "sac", "action_space_type": "continuous"}))


@pytest.mark.parametrize("case", sorted(DROA_REFUSALS))
def test_droa_rules_are_checked_before_uploading(case, droa, factory, s3_client, upload_bucket, tmp_path,
                                                 monkeypatch):
    import session.models.droa

    folder = tmp_path / "m"
    write_model_folder(folder)
    _break(folder, case)
    _, _, droa_says, line_holds = DROA_REFUSALS[case]

    with pytest.raises(DroaError) as info:
        client(droa, factory).import_model(folder, "broken")
    lines = str(info.value).splitlines()
    assert lines[0].startswith(f"{folder}: DRoA would refuse this import (") and "nothing was uploaded" in lines[0]
    assert any(line_holds in line for line in lines[1:]), lines
    assert droa.requests == [] and uploaded(s3_client, upload_bucket) == {}  # not even env.js was asked for

    # Without the pre-check, the stand-in refuses the same folder with DRoA's message, after the upload.
    monkeypatch.setattr(session.models.droa, "check_droa_rules", lambda files, params, where: [])
    with pytest.raises(DroaError) as info:
        session_client = client(droa, factory)
        model_id = session_client.import_model(folder, "broken")
        session_client.wait_for_import(model_id, interval=0.01)
    assert droa_says in str(info.value)
    assert uploaded(s3_client, upload_bucket) != {}


def test_every_droa_finding_is_reported_at_once(droa, factory, tmp_path):
    folder = tmp_path / "m"
    write_model_folder(folder)
    for case in ("banned word in a comment", "DeepRacer shell in a colour DRoA lacks", "too many objects"):
        _break(folder, case)
    (folder / "reward_function.py").write_text("import os\n" + (folder / "reward_function.py").read_text())
    with pytest.raises(DroaError) as info:
        client(droa, factory).import_model(folder, "broken")
    text = str(info.value)
    lines = text.splitlines()
    assert "(6 findings; nothing was uploaded)" in lines[0]
    assert [line.split(": ")[:2] for line in lines[1:]] == [
        ["reward_function.py", "line 1"], ["reward_function.py", "line 2"], ["reward_function.py", "line 1"],
        ["reward_function.py", "line 4"], ["training_params.yaml", "CAR_COLOR"],
        ["training_params.yaml", "NUMBER_OF_OBSTACLES"]]
    assert "flake8 F401 'os' imported but unused" in lines[1] and "flake8 E302 expected 2 blank lines" in lines[2]
    assert "imports os; DRoA allows only math, random, numpy, scipy, shapely" in lines[3]
    assert "contains 'load'" in lines[4]
    assert "training_params.yaml: CAR_COLOR: Pink" in text and "training_params.yaml: NUMBER_OF_OBSTACLES:" in text
    assert droa.requests == []


def test_a_waf_block_is_found_before_uploading(droa, factory, s3_client, upload_bucket, tmp_path):
    write_model_folder(tmp_path / "m")
    droa.waf_blocks_host = True
    with pytest.raises(DroaError) as info:
        client(droa, factory).import_model(tmp_path / "m", "from-azure")
    assert str(info.value).startswith(
        "DRoA's API refused this host's address (AWS WAF blocks hosting-provider/anonymous IPs, e.g. an Azure VM): "
        "run import-droa from an AWS host or your own machine (GET /models answered HTTP 403 Forbidden")
    assert uploaded(s3_client, upload_bucket) == {}
    api = [seen for seen in droa.requests if seen.path.startswith(STAGE + "/")]
    assert [(seen.method, seen.path) for seen in api] == [("GET", f"{STAGE}/models")]  # one signed call
    assert "authorization" in {name.lower() for name in api[0].headers}


def test_droa_failure_on_a_file_it_cannot_read_is_explained(droa, factory, tmp_path, monkeypatch):
    write_model_folder(tmp_path / "m")
    original = droa._read

    def read(key: str) -> bytes:  # as if the upload had lost the file: DRoA's handler fails with a 500
        if key.endswith("/ip/hyperparameters.json"):
            raise KeyError(key)
        return original(key)

    monkeypatch.setattr(droa, "_read", read)
    with pytest.raises(DroaError) as info:
        client(droa, factory).import_model(tmp_path / "m", "broken")
    assert "DRoA failed the import of broken (HTTP 500: Internal Failure)" in str(info.value)
    assert "ip/hyperparameters.json" in str(info.value)


def test_firewall_refusal_is_explained(droa, factory):
    droa.api_override = lambda method, path: (403, {"Content-Type": "application/json"}, b'{"message":"Forbidden"}')
    with pytest.raises(DroaError) as info:
        client(droa, factory).list_models()
    assert "AWS WAF blocks hosting-provider/anonymous IPs" in str(info.value)
    assert "GET /models answered HTTP 403 Forbidden while listing models" in str(info.value)


def test_incomplete_folder_is_refused_before_anything_is_sent(droa, factory, tmp_path, s3_client, upload_bucket):
    folder = tmp_path / "half"
    write_model_folder(folder)
    (folder / "ip" / "hyperparameters.json").unlink()
    (folder / "model" / "10_Step-2500.ckpt.meta").unlink()
    with pytest.raises(DroaError) as info:
        client(droa, factory).import_model(folder, "half")
    assert str(info.value).startswith(f"{folder} lacks ip/hyperparameters.json, model/10_Step-2500.ckpt.meta: ")
    assert droa.requests == [] and uploaded(s3_client, upload_bucket) == {}


def test_too_big_a_folder_is_refused(droa, factory, tmp_path, monkeypatch):
    import session.models.droa

    write_model_folder(tmp_path / "big")
    monkeypatch.setattr(session.models.droa, "MAX_IMPORT_BYTES", 10_000)
    with pytest.raises(DroaError) as info:
        client(droa, factory).import_model(tmp_path / "big", "big")
    assert "DRoA imports at most 9.8 KiB" in str(info.value)
    assert MAX_IMPORT_BYTES == 1024 ** 3
    assert droa.requests == []


def test_model_name_rules_are_droas_and_checked_first(droa, factory, tmp_path):
    write_model_folder(tmp_path / "m")
    with pytest.raises(DroaError) as info:
        client(droa, factory).import_model(tmp_path / "m", "rl_deepracer.1")
    assert "letters, digits and hyphens" in str(info.value) and "'rl-deepracer-1'" in str(info.value)
    with pytest.raises(DroaError):
        check_model_name("ok-name", "no commas, please")
    check_model_name("a" * 64, "Plain words and-hyphens 2")
    assert droa_model_name("rl_deepracer.sagemaker/1") == "rl-deepracer-sagemaker-1"
    assert droa_model_name("___") == "model"
    assert len(droa_model_name("x" * 100)) == 64
    assert droa.requests == []


# --- waiting for the import ---------------------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_for_import_returns_the_ready_model(droa, factory, tmp_path):
    write_model_folder(tmp_path / "m")
    droa.status_script = ["IMPORTING", "IMPORTING", "READY"]
    session = client(droa, factory)
    model_id = session.import_model(tmp_path / "m", "waits")
    fake, lines = FakeTime(), []
    model = session.wait_for_import(model_id, timeout=600, interval=15, clock=fake.clock, sleep=fake.sleep,
                                    report=lines.append)
    assert (model.model_id, model.name, model.status) == (model_id, "waits", "READY")
    assert fake.sleeps == [15, 15]
    assert lines == ["model waits: IMPORTING", "model waits: READY"]


def test_wait_for_import_raises_droas_reason(droa, factory, tmp_path):
    write_model_folder(tmp_path / "m")
    droa.status_script = ["IMPORTING", "ERROR"]
    droa.import_error_message = "Reward Function Validation Invalid syntax at line 2"
    session = client(droa, factory)
    model_id = session.import_model(tmp_path / "m", "fails")
    fake = FakeTime()
    with pytest.raises(DroaError) as info:
        session.wait_for_import(model_id, clock=fake.clock, sleep=fake.sleep)
    assert str(info.value) == (f"DRoA could not import model fails ({model_id}): Reward Function Validation Invalid "
                               "syntax at line 2")


def test_wait_for_import_gives_up_at_the_timeout(droa, factory):
    model_id = droa.add_model("slow", status="IMPORTING")
    fake = FakeTime()
    with pytest.raises(DroaError) as info:
        client(droa, factory).wait_for_import(model_id, timeout=60, interval=15, clock=fake.clock, sleep=fake.sleep)
    assert f"model slow ({model_id}) is still IMPORTING after 60 s" in str(info.value)
    assert sum(fake.sleeps) == 60


def test_unknown_model_is_droas_not_found(droa, factory):
    with pytest.raises(DroaError) as info:
        client(droa, factory).get_model("nope")
    assert str(info.value) == "DRoA found nothing for GET /models/nope while reading model nope: Model nope not found."


# --- the password --------------------------------------------------------------------------------------------------


def test_password_never_appears_in_output_logs_or_errors(droa, factory, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)  # the SDK's debug logs print request bodies, unless held back
    wrong = "Wrong-Secret-77!"
    texts = []
    for user, password in ((USER, wrong), ("nobody", wrong), (NEWBIE, NEWBIE_PASSWORD), (LONER, LONER_PASSWORD)):
        with pytest.raises(DroaError) as info:
            client(droa, factory, user=user, password=password).login()
        texts += [str(info.value), repr(info.value), "".join(traceback.format_exception(info.value))]
    write_model_folder(tmp_path / "m", world="Mexico_track")
    session = client(droa, factory)
    droa.api_override = lambda method, path: (_answer(400, {"message": "Invalid track configuration."},
                                                      "BadRequestError") if path.endswith("/importmodel") else None)
    with pytest.raises(DroaError) as info:
        session.import_model(tmp_path / "m", "rejected", report=print)
    texts += [str(info.value), "".join(traceback.format_exception(info.value))]
    droa.api_override = None
    write_model_folder(tmp_path / "ok")
    model_id = session.import_model(tmp_path / "ok", "accepted", report=print)
    session.wait_for_import(model_id, clock=FakeTime().clock, sleep=lambda s: None, report=print)
    session.list_models()
    texts += [repr(session), repr(vars(session))]
    out = capsys.readouterr()
    texts += [out.out, out.err, caplog.text]

    secrets = (PASSWORD, wrong, NEWBIE_PASSWORD, LONER_PASSWORD)
    # they did travel, to the stand-in's Cognito: the search looked where they went out
    assert all(any(s.encode() in seen.body for seen in droa.requests) for s in secrets)
    assert not [s for s in secrets if any(s in text for text in texts)]


def test_the_password_search_would_find_a_leak(droa, caplog):
    """Control for the test above: the SDK at DEBUG logs a login's password when nothing holds it back."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    caplog.set_level(logging.DEBUG)
    idp = boto3.session.Session(region_name=REGION).client(
        "cognito-idp", endpoint_url=droa.url, config=Config(signature_version=UNSIGNED))
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do: the log is what is checked
        idp.initiate_auth(AuthFlow="USER_PASSWORD_AUTH", ClientId=CLIENT_ID,
                          AuthParameters={"USERNAME": USER, "PASSWORD": "Canary-Secret-55"})
    assert "Canary-Secret-55" in caplog.text


def test_password_from_the_environment_or_the_terminal():
    assert read_password(USER, environ={PASSWORD_ENV: "from-env"}, interactive=False) == "from-env"
    prompts = []
    assert read_password(USER, environ={}, interactive=True,
                         prompt=lambda text: prompts.append(text) or "typed") == "typed"
    assert prompts == ["DRoA password for racer1: "]
    with pytest.raises(DroaError) as info:
        read_password(USER, environ={}, interactive=False)
    assert PASSWORD_ENV in str(info.value)
    with pytest.raises(DroaError):
        read_password(USER, environ={PASSWORD_ENV: ""}, interactive=True, prompt=lambda text: "")


# --- training_params.yaml for DRoA -----------------------------------------------------------------------------------


def params(**values):
    return {"WORLD_NAME": "reInvent2019_wide", "REVERSE_DIR": "False", **values}


@pytest.mark.parametrize("given, world, clockwise", [
    (params(WORLD_NAME="2024_reinvent_champ_cw"), "2024_reinvent_champ", True),
    (params(WORLD_NAME="2024_reinvent_champ_ccw"), "2024_reinvent_champ", False),
    (params(), "reInvent2019_wide", False),  # a bare route drives counter-clockwise
    (params(REVERSE_DIR="True"), "reInvent2019_wide", True),
    (params(WORLD_NAME="2024_reinvent_champ_ccw", REVERSE_DIR=True), "2024_reinvent_champ", True),
    (params(TRACK_DIRECTION_CLOCKWISE="true"), "reInvent2019_wide", True),
    (params(TRACK_DIRECTION_CLOCKWISE=False), "reInvent2019_wide", False),
    (params(WORLD_NAME="2022_april_open_cw", TRACK_DIRECTION_CLOCKWISE="false"), "2022_april_open", True),
])
def test_track_direction_becomes_what_droa_reads(given, world, clockwise):
    out, notes = droa_training_params(given, "upload-bucket", "uploads/models/u")
    assert out["WORLD_NAME"] == world
    assert out["TRACK_DIRECTION_CLOCKWISE"] is clockwise
    assert out["REVERSE_DIR"] == "False"
    if given.get("TRACK_DIRECTION_CLOCKWISE") is not False:
        assert len(notes) == 1 and f"TRACK_DIRECTION_CLOCKWISE: {str(clockwise).lower()}" in notes[0]
    else:
        assert notes == []


def test_training_params_point_at_the_upload_and_keep_their_types():
    given = params(SAGEMAKER_SHARED_S3_BUCKET=["old"], SIMTRACE_S3_PREFIX="old/prefix", RACE_TYPE="OBJECT_AVOIDANCE",
                   NUMBER_OF_OBSTACLES="3", RANDOMIZE_OBSTACLE_LOCATIONS="False",
                   OBJECT_POSITIONS=["0.2,1", "0.5,-1", "0.8,1"], CHANGE_START_POSITION="True")
    out, _ = droa_training_params(given, "bkt", "uploads/models/u")
    assert out["SAGEMAKER_SHARED_S3_BUCKET"] == ["bkt"]  # a list stays a list
    assert out["SAGEMAKER_SHARED_S3_PREFIX"] == "uploads/models/u"
    assert out["SIMTRACE_S3_PREFIX"] == "uploads/models/u" and "SIMTRACE_S3_BUCKET" not in out
    assert out["METRICS_S3_OBJECT_KEY"] == "uploads/models/u/metrics/TrainingMetrics.json"
    assert out["REWARD_FILE_S3_KEY"] == "uploads/models/u/reward_function.py"
    assert out["NUMBER_OF_OBSTACLES"] == 3 and out["RANDOMIZE_OBSTACLE_LOCATIONS"] is False
    assert out["OBJECT_POSITIONS"] == ["0.2,1", "0.5,-1", "0.8,1"] and out["CHANGE_START_POSITION"] == "True"
    assert given["SAGEMAKER_SHARED_S3_BUCKET"] == ["old"]  # the input is not changed


@pytest.mark.parametrize("given, expected", [
    ({"REVERSE_DIR": "False"}, "has no WORLD_NAME"),
    (params(TRACK_DIRECTION_CLOCKWISE="sideways"), "TRACK_DIRECTION_CLOCKWISE is 'sideways'; expected true or false"),
])
def test_training_params_droa_cannot_read_are_refused(given, expected):
    with pytest.raises(DroaError) as info:
        droa_training_params(given, "b", "p")
    assert expected in str(info.value)


@pytest.mark.parametrize("given, expected", [
    ("https://d111111abcdef8.cloudfront.net", "https://d111111abcdef8.cloudfront.net"),
    ("d111111abcdef8.cloudfront.net/", "https://d111111abcdef8.cloudfront.net"),
    ("https://racing.example.com/env.js", "https://racing.example.com"),
    ("https://racing.example.com/index.html#/models?x=1", "https://racing.example.com"),
    ("http://127.0.0.1:8080/droa/", "http://127.0.0.1:8080/droa"),
])
def test_site_url_is_the_web_apps_address(given, expected):
    from session.models.droa import site_url

    assert site_url(given) == expected


@pytest.mark.parametrize("given", ["", "ftp://racing.example.com", "https://"])
def test_site_url_that_is_no_web_address_is_refused(given):
    from session.models.droa import site_url

    with pytest.raises(DroaError):
        site_url(given)
