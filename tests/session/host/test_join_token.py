"""session.host.join_token: the worker join token published where the nodes read it, and nowhere else.

AWS against moto's server (real HTTP, the SSM API; tests/conftest.py `s3_server`); Azure against a Key Vault
stand-in written from Key Vault's REST API (tests/session/keyvault_standin.py) with the metadata stand-in's
managed identity (tests/session/metadata_standin.py). Each value written is read back the way a node reads it:
with the node's own reader, cloudinit/node/scripts/node-cloud.py.
"""

from __future__ import annotations

import importlib.util
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import boto3
import pytest

from infra.bootstrap import CLOUDINIT_DIR
from session.core.config import ConfigError, load_config, load_system_config
from session.host import join_token
from session.host.join_token import PublishError, key_vault_publisher, publisher_for, ssm_publisher
from tests.session import keyvault_standin, metadata_standin
from tests.session.host.conftest import KEY_ALIAS, PARAMETER, REGION
from tests.session.keyvault_standin import KeyVaultStandin
from tests.session.metadata_standin import VAULT_TOKEN, MetadataStandin

TOKEN = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"
SECRET = "swarm-worker-join-token"
MANAGER = "10.42.1.4:2377"


def _node_cloud():
    spec = importlib.util.spec_from_file_location("node_cloud", CLOUDINIT_DIR / "node" / "scripts" / "node-cloud.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def azure() -> Iterator[tuple[MetadataStandin, KeyVaultStandin]]:
    imds, stop_imds = metadata_standin.start()
    vault, stop_vault = keyvault_standin.start()
    vault.versions[SECRET] = ["none"]  # the stack's placeholder (infra/azure_sim_nodes.py)
    try:
        yield imds, vault
    finally:
        stop_vault()
        stop_imds()


def _vault_publisher(imds: MetadataStandin, vault: KeyVaultStandin, waits: list[float], said: list[str], **options):
    clock = iter(range(0, 100_000, 15))  # each look at the clock 15 s later: the 403 wait counted, not slept
    return key_vault_publisher(vault.secret_url(SECRET), imds=imds.url, sleep=waits.append, say=said.append,
                               clock=lambda: float(next(clock)), backoff_s=(0.0,), **options)


# --- AWS ------------------------------------------------------------------------------------------------------

def test_aws_the_token_overwrites_the_placeholder_as_a_secure_string_and_the_node_reads_it(ssm):
    ssm_publisher(PARAMETER, REGION, KEY_ALIAS)(TOKEN, MANAGER)

    parameter = ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]
    assert (parameter["Type"], parameter["Value"], parameter["Version"]) == ("SecureString", TOKEN, 2)
    # encrypted with the stack's key, named on each write (without it SSM would use the account's aws/ssm key)
    (described,) = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [PARAMETER]}])["Parameters"]
    assert described["KeyId"] == KEY_ALIAS
    assert _node_cloud().read_ssm_parameter(PARAMETER, REGION) == TOKEN


def test_aws_a_refusal_is_one_line_naming_the_parameter_without_the_token(ssm):
    # SSM refuses names under `aws`/`ssm` (reserved): a refusal that echoes what was sent
    with pytest.raises(PublishError) as raised:
        ssm_publisher("/aws/reserved/token", REGION)(TOKEN, MANAGER)
    message = str(raised.value)
    assert "/aws/reserved/token" in message and REGION in message
    assert TOKEN not in message and "\n" not in message


def test_aws_a_refusal_that_quotes_the_value_is_blanked(monkeypatch: pytest.MonkeyPatch):
    """AWS's validation errors quote the offending input ("Value '...' at 'value' failed to satisfy constraint"):
    botocore's own Stubber answers with such an error, and the token is blanked out of the message."""
    from botocore.stub import Stubber

    client = boto3.client("ssm", region_name=REGION)
    stubber = Stubber(client)
    stubber.add_client_error("put_parameter", "ValidationException", f"1 validation error detected: Value '{TOKEN}' "
                             "at 'value' failed to satisfy constraint: Member must have length less than or equal "
                             "to 4096")
    monkeypatch.setattr(boto3, "client", lambda *args, **kwargs: client)
    with stubber, pytest.raises(PublishError) as raised:
        ssm_publisher(PARAMETER, REGION)(TOKEN, MANAGER)
    assert TOKEN not in str(raised.value) and "Value '<token>'" in str(raised.value)


# --- Azure ----------------------------------------------------------------------------------------------------

def test_azure_the_token_is_set_with_the_identitys_vault_token_and_the_node_reads_it(azure):
    imds, vault = azure
    waits: list[float] = []
    said: list[str] = []

    _vault_publisher(imds, vault, waits, said)(TOKEN, MANAGER)

    assert vault.versions[SECRET] == ["none", TOKEN]
    put = [r for r in vault.requests if r.method == "PUT"][-1]
    assert put.query["api-version"] == ["7.4"] and json.loads(put.body) == {"value": TOKEN}
    asked = imds.of("GET", "/metadata/identity/oauth2/token")[-1]
    assert asked.query["resource"] == ["https://vault.azure.net"] and asked.headers["metadata"] == "true"
    assert waits == [] and said == []
    node = _node_cloud()
    node.IMDS = imds.url
    assert node.read_azure_secret(vault.secret_url(SECRET)) == TOKEN


def test_azure_a_role_assignment_not_applied_yet_is_waited_for(azure):
    imds, vault = azure
    vault.forbidden = 3
    waits: list[float] = []
    said: list[str] = []

    _vault_publisher(imds, vault, waits, said)(TOKEN, MANAGER)

    assert vault.value(SECRET) == TOKEN
    assert waits == [15.0, 15.0, 15.0] and len(said) == 3
    assert all("HTTP 403" in line and "role assignment" in line and TOKEN not in line for line in said)


def test_azure_a_role_that_never_allows_it_fails_in_one_line_naming_the_action(azure):
    imds, vault = azure
    vault.allows_set = False
    waits: list[float] = []

    with pytest.raises(PublishError) as raised:
        _vault_publisher(imds, vault, waits, [], forbidden_wait_s=60.0)(TOKEN, MANAGER)

    message = str(raised.value)
    assert "HTTP 403" in message and "Microsoft.KeyVault/vaults/secrets/setSecret/action" in message
    assert TOKEN not in message and "\n" not in message
    assert waits == [15.0] * 3 and vault.value(SECRET) == "none"  # 15, 30, 45 s; at 60 it gave up


def test_azure_an_identity_that_is_not_ready_is_retried_with_the_metadata_backoff(azure):
    imds, vault = azure
    imds.identity_failures = [404, 410]
    waits: list[float] = []

    key_vault_publisher(vault.secret_url(SECRET), imds=imds.url, sleep=waits.append, say=lambda _: None,
                        backoff_s=(1.0, 2.0, 4.0))(TOKEN, MANAGER)

    assert waits == [1.0, 2.0] and vault.value(SECRET) == TOKEN


def test_the_key_vault_standin_refuses_what_key_vault_refuses(azure):
    _, vault = azure
    url = vault.secret_url(SECRET)
    body = json.dumps({"value": "x"}).encode()

    def put(query: str, headers: dict[str, str]) -> tuple[int, dict, dict]:
        request = urllib.request.Request(f"{url}?{query}", data=body, method="PUT", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read()), dict(answer.headers)
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read()), dict(error.headers)

    status, answer, headers = put("api-version=7.4", {})
    assert status == 401 and 'resource="https://vault.azure.net"' in headers["WWW-Authenticate"]
    assert put("api-version=7.4", {"Authorization": f"Bearer {metadata_standin.IDENTITY_TOKEN}"})[0] == 401
    status, answer, _ = put("api-version=2099-01-01", {"Authorization": f"Bearer {VAULT_TOKEN}"})
    assert status == 400 and answer["error"]["code"] == "BadParameter"
    assert put("api-version=7.4", {"Authorization": f"Bearer {VAULT_TOKEN}"})[0] == 200
    assert vault.versions[SECRET] == ["none", "x"]


# --- which channel ----------------------------------------------------------------------------------------------

def _system(tmp_path: Path, text: str):
    path = tmp_path / "system.env"
    path.write_text("DR_SIMAPP_VERSION=6.0.4-gpu\n" + text)
    return load_system_config(path, environ={})


def test_system_env_chooses_the_channel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    chosen: list[tuple[str, tuple]] = []
    for name in ("ssm_publisher", "key_vault_publisher", "file_publisher"):
        monkeypatch.setattr(join_token, name, lambda *args, _name=name, **_: chosen.append((_name, args)))

    publisher_for(_system(tmp_path, f"DR_CLOUD=aws\nDR_AWS_APP_REGION={REGION}\nDR_SIM_NODES=2\n"
                                    f"DR_SIM_NODE_WORKERS=4\nDR_SWARM_TOKEN_PARAMETER={PARAMETER}\n"
                                    f"DR_SWARM_TOKEN_KEY_ID={KEY_ALIAS}\n"))
    publisher_for(_system(tmp_path, "DR_CLOUD=azure\nDR_SIM_NODES=1\nDR_SIM_NODE_WORKERS=4\n"
                                    "DR_SWARM_TOKEN_SECRET_URL=https://drswarmx.vault.azure.net/secrets/t\n"))
    publisher_for(_system(tmp_path, "DR_CLOUD=aws\n"))

    assert chosen == [("ssm_publisher", (PARAMETER, REGION, KEY_ALIAS)),
                      ("key_vault_publisher", ("https://drswarmx.vault.azure.net/secrets/t",)),
                      ("file_publisher", ())]


def test_nodes_without_the_tokens_place_is_a_config_error_naming_the_key(tmp_path: Path):
    with pytest.raises(ConfigError) as raised:
        publisher_for(_system(tmp_path, "DR_CLOUD=azure\nDR_SIM_NODES=2\n"))
    assert "DR_SWARM_TOKEN_SECRET_URL" in str(raised.value) and "system.env" in str(raised.value)


@pytest.mark.parametrize("cloud", ["aws", "azure"])
def test_the_system_env_the_stack_writes_with_nodes_is_read_without_warnings_and_names_the_channel(
        cloud: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """infra/bootstrap.py writes the keys, session/core/config.py reads them: one contract, checked end to end."""
    from infra.bootstrap import HostConfig, system_env

    host = HostConfig(
        cloud=cloud, region=REGION, bucket="bucket", simapp_image="awsdeepracercommunity/deepracer-simapp:6.0.4-gpu",
        workers=3, session_package_url="s3://bucket/p.tar.gz", status_url="s3://bucket/hosts/", sim_nodes=2,
        sim_node_workers=4, minio_access_key="a", minio_secret_key="s", azure_storage_account="acct",
        azure_blob_container="models", swarm_token_parameter=PARAMETER, swarm_token_key=KEY_ALIAS,
        swarm_token_secret_url="https://drswarmx.vault.azure.net/secrets/swarm-worker-join-token")
    (tmp_path / "system.env").write_text(system_env(host))
    (tmp_path / "run.env").write_text("")
    loaded = load_config(tmp_path / "run.env", tmp_path / "system.env", environ={})
    assert loaded.warnings == ()
    chosen: list[tuple] = []
    for name in ("ssm_publisher", "key_vault_publisher"):
        monkeypatch.setattr(join_token, name, lambda *args, _name=name, **_: chosen.append((_name, *args)))
    publisher_for(loaded.system)
    assert chosen == ([("ssm_publisher", PARAMETER, REGION, KEY_ALIAS)] if cloud == "aws" else
                      [("key_vault_publisher", host.swarm_token_secret_url)])
    assert loaded.system.sim_nodes == 2 and loaded.system.sim_node_workers == 4
