#!/usr/bin/env python3
"""A simulation node's two conversations with its cloud (docs/multi-node.md), standard library only on Azure.

    node-cloud.py wait-token --minutes N    print the swarm's worker join token once the host has published it
    node-cloud.py deallocate                Azure: deallocate this VM with its own managed identity

The token is read from where node.env says: DR_SWARM_TOKEN_PARAMETER (AWS: an SSM SecureString, boto3) or
DR_SWARM_TOKEN_SECRET_URL (Azure: a Key Vault secret, the managed identity's token from IMDS). Until the host
has published a real token the secret holds a placeholder, and this waits. The token is printed to stdout only,
for the caller's variable: never to the log.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

NODE_ENV = os.environ.get("DR_NODE_ENV", "/etc/deepracer/node.env")
IMDS = os.environ.get("DR_IMDS_ENDPOINT", "http://169.254.169.254")
POLL_SECONDS = float(os.environ.get("DR_TOKEN_POLL_SECONDS", "15"))
TOKEN = re.compile(r"SWMTKN-1-[0-9a-z]+-[0-9a-z]+")
VAULT_RESOURCE = "https://vault.azure.net"
ARM = "https://management.azure.com"


def read_env(path: str) -> dict:
    values = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key] = value
    return values


def _imds(path: str) -> bytes:
    request = urllib.request.Request(f"{IMDS}{path}", headers={"Metadata": "true"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return response.read()


def azure_token(resource: str) -> str:
    query = urllib.parse.urlencode({"api-version": "2018-02-01", "resource": resource})
    return json.loads(_imds(f"/metadata/identity/oauth2/token?{query}"))["access_token"]


def read_azure_secret(url: str) -> str:
    request = urllib.request.Request(f"{url}?api-version=7.4",
                                     headers={"Authorization": f"Bearer {azure_token(VAULT_RESOURCE)}"})
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())["value"]


def read_ssm_parameter(name: str, region: str) -> str:
    import boto3

    client = boto3.client("ssm", region_name=region)
    return client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]


def read_token(env: dict) -> str:
    if env.get("DR_SWARM_TOKEN_SECRET_URL"):
        return read_azure_secret(env["DR_SWARM_TOKEN_SECRET_URL"])
    return read_ssm_parameter(env["DR_SWARM_TOKEN_PARAMETER"], env.get("DR_AWS_APP_REGION", "us-east-1"))


def wait_token(env: dict, minutes: float, read=read_token, sleep=time.sleep, clock=time.monotonic) -> str:
    """The published token; SystemExit after `minutes` of placeholder or unreadable secret. Errors are named
    without the secret's value."""
    deadline = clock() + minutes * 60
    last = "the secret still holds its placeholder"
    while True:
        try:
            value = read(env).strip()
            if TOKEN.fullmatch(value):
                return value
            last = "the secret still holds its placeholder"
        except Exception as error:  # noqa: BLE001 - identity not ready, role not yet applied, network: retried
            last = f"reading the secret failed: {type(error).__name__}"
        if clock() >= deadline:
            raise SystemExit(f"node-cloud: no swarm token from the host after {minutes:g} min ({last}); is the "
                             "host up and its bootstrap past the swarm step?")
        print(f"node-cloud: waiting for the swarm token ({last})", file=sys.stderr, flush=True)
        sleep(POLL_SECONDS)


def deallocate() -> None:
    resource_id = _imds("/metadata/instance/compute/resourceId?api-version=2021-02-01&format=text").decode().strip()
    request = urllib.request.Request(f"{ARM}{resource_id}/deallocate?api-version=2024-07-01", data=b"",
                                     method="POST", headers={"Authorization": f"Bearer {azure_token(ARM + '/')}"})
    for attempt in range(1, 6):
        try:
            with urllib.request.urlopen(request, timeout=30):
                print(f"node-cloud: deallocating {resource_id}")
                return
        except (urllib.error.URLError, OSError) as error:
            print(f"node-cloud: deallocate failed ({error}); attempt {attempt}", file=sys.stderr, flush=True)
            time.sleep(attempt * 5)
    raise SystemExit("node-cloud: could not deallocate this VM; the next watchdog run tries again")


def main(argv: list) -> int:
    env = read_env(NODE_ENV)
    if len(argv) == 3 and argv[0] == "wait-token" and argv[1] == "--minutes":
        print(wait_token(env, float(argv[2])))
        return 0
    if argv == ["deallocate"]:
        deallocate()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
