"""Where this host, the swarm's manager, publishes the worker join token for the simulation nodes to read
(docs/multi-node.md, "The contract between the host, the nodes and the stack").

- AWS: the SSM SecureString `DR_SWARM_TOKEN_PARAMETER`, written with the instance role (`ssm:PutParameter` on that
  one parameter) through boto3's default chain.
- Azure: the Key Vault secret `DR_SWARM_TOKEN_SECRET_URL`, set with the managed identity (the one data action
  `secrets/setSecret/action` on that one secret) through Key Vault's REST API: `PUT <secret url>?api-version=7.4`
  with `{"value": <token>}` and a bearer token from IMDS for `https://vault.azure.net`
  (https://learn.microsoft.com/rest/api/keyvault/secrets/set-secret/set-secret).
- A host without nodes (and a test): a file readable by root only.

The token admits a machine to the swarm: it goes to the channel and nowhere else. No message here carries it, and
an answer quoted in an error has it blanked out first.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Optional

from session.core import console
from session.core.config import SystemConfig
from session.core.console import Say
from session.core.errors import DeepracerError
from session.core.metadata import IMDS, NoticeError, azure_identity_token, excerpt, retried_exchange
from session.core.paths import default_join_token_file

PublishJoinToken = Callable[[str, str], None]  # (token, manager address "<ip>:2377")

VAULT_RESOURCE = "https://vault.azure.net"
VAULT_API_VERSION = "7.4"
VAULT_RETRY = frozenset({429}) | frozenset(range(500, 600))  # throttled, or a transient failure
SET_SECRET_ACTION = "Microsoft.KeyVault/vaults/secrets/setSecret/action"
# A role assignment can take up to 10 minutes to take effect (Azure RBAC's troubleshooting guide): the host's
# assignment on the secret is made with the VM, so its first boot may be refused (403) for a while.
FORBIDDEN_WAIT_S = 10 * 60.0
FORBIDDEN_POLL_S = 15.0


class PublishError(DeepracerError):
    """The join token could not be written to its channel; `str()` is one line without the token."""


def _blanked(text: str, token: str) -> str:
    return text.replace(token, "<token>") if token else text


def file_publisher(path: Optional[Path] = None) -> PublishJoinToken:
    """A publisher that writes `{"token", "manager"}` to `path` (default: the paths module's), readable by root
    only: the token admits any machine that can reach the manager to the swarm."""

    def publish(token: str, manager: str) -> None:
        target = path or default_join_token_file()
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump({"token": token, "manager": manager}, out)
        os.chmod(target, 0o600)  # an existing file keeps its old mode through os.open

    return publish


def ssm_publisher(parameter: str, region: str, key_id: Optional[str] = None) -> PublishJoinToken:
    """Overwrites the SSM SecureString `parameter` (in `region`) with the token, encrypted with `key_id` (the stack's
    own key: an overwrite without a key id would encrypt with the account's aws/ssm key); the manager's address is in
    the nodes' user data already."""

    def publish(token: str, manager: str) -> None:
        import boto3  # start-up: boto3 loads only on a host that publishes to SSM
        from botocore.exceptions import BotoCoreError, ClientError

        key = {"KeyId": key_id} if key_id else {}
        try:
            boto3.client("ssm", region_name=region).put_parameter(
                Name=parameter, Type="SecureString", Overwrite=True, Value=token, **key)
        except ClientError as error:
            info = error.response.get("Error", {})
            hint = (f"; the host's role needs ssm:PutParameter on {parameter} and kms:Encrypt on its key"
                    if info.get("Code") in ("AccessDeniedException", "AccessDenied") else "")
            raise PublishError(_blanked(f"cannot write the swarm's join token to SSM parameter {parameter} (region "
                                        f"{region}): {info.get('Code')}: {info.get('Message')}{hint}", token)) from None
        except BotoCoreError as error:
            raise PublishError(_blanked(f"cannot write the swarm's join token to SSM parameter {parameter} (region "
                                        f"{region}): {error}", token)) from None

    return publish


def key_vault_publisher(secret_url: str, *, imds: str = IMDS, forbidden_wait_s: float = FORBIDDEN_WAIT_S,
                        poll_s: float = FORBIDDEN_POLL_S, backoff_s: Optional[tuple[float, ...]] = None,
                        sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                        say: Say = console.say) -> PublishJoinToken:
    """Sets the Key Vault secret at `secret_url` (`https://<vault>.vault.azure.net/secrets/<name>`) to the token,
    as this VM's managed identity. A 403 is tried again every `poll_s` for `forbidden_wait_s` (a new role
    assignment takes minutes to apply); throttling and 5xx get the metadata module's backoff."""
    retries = {"backoff_s": backoff_s} if backoff_s is not None else {}

    def publish(token: str, manager: str) -> None:
        url = f"{secret_url.rstrip('/')}?api-version={VAULT_API_VERSION}"
        deadline = clock() + forbidden_wait_s
        while True:
            try:
                bearer = azure_identity_token(VAULT_RESOURCE, imds=imds, sleep=sleep, timeout=10.0, **retries)
                status, body = retried_exchange(
                    url, VAULT_RETRY, method="PUT", body=json.dumps({"value": token}).encode(), timeout=20.0,
                    sleep=sleep, headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
                    **retries)
            except NoticeError as error:
                raise PublishError(f"cannot write the swarm's join token to {secret_url}: {error}") from None
            if status == 200:
                return
            if status == 403 and clock() < deadline:
                say(f"Key Vault refused to set {secret_url} (HTTP 403): the host's role assignment may not have "
                    f"applied yet (it can take minutes); trying again in {poll_s:g} s")
                sleep(poll_s)
                continue
            hint = (f"; the host's managed identity needs {SET_SECRET_ACTION} on that secret (the stack's "
                    f"'swarm-token-writer' role), waited {forbidden_wait_s / 60:g} min for it"
                    if status == 403 else "")
            raise PublishError(_blanked(f"cannot write the swarm's join token to {secret_url}: Key Vault answered "
                                        f"HTTP {status}: {excerpt(body)}{hint}", token))

    return publish


def publisher_for(system: SystemConfig, *, say: Say = console.say) -> PublishJoinToken:
    """The channel system.env names: the SSM parameter (AWS), the Key Vault secret (Azure), else the root-only
    file. With DR_SIM_NODES > 0 the channel must be named: the nodes read nothing else."""
    if system.swarm_token_parameter:
        return ssm_publisher(system.swarm_token_parameter, system.aws_app_region, system.swarm_token_key_id)
    if system.swarm_token_secret_url:
        return key_vault_publisher(system.swarm_token_secret_url, say=say)
    if system.sim_nodes:
        key = "DR_SWARM_TOKEN_SECRET_URL" if system.cloud == "azure" else "DR_SWARM_TOKEN_PARAMETER"
        raise system.error(key, f"where the nodes read the swarm's join token (written by the stack with "
                                f"DR_SIM_NODES={system.sim_nodes})")
    return file_publisher()
