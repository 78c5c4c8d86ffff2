"""A local HTTP server that PLAYS THE CLOUDS' INSTANCE METADATA SERVICES for the tests (no cloud is asked).

One server answers what this host asks 169.254.169.254 and Azure Resource Manager on AWS and Azure, with the
status codes, headers and documents the real services use:

- AWS IMDSv2: `PUT /latest/api/token` (needs X-aws-ec2-metadata-token-ttl-seconds) returns a token;
  `GET /latest/meta-data/spot/instance-action` needs a valid X-aws-ec2-metadata-token (401 otherwise) and
  answers 404 without a notice, else `{"action": ..., "time": ...}`. The instance role's credentials:
  `GET /latest/meta-data/iam/security-credentials/` names the role, `.../<role>` returns the keys document
  (Code, AccessKeyId, SecretAccessKey, Token, Expiration, ...). Tokens are required (http_tokens=required).
  `GET /latest/meta-data/local-ipv4`: the instance's primary private IPv4 (`private_ip`); `instance-type` and
  `instance-life-cycle` (`on-demand` or `spot`): `aws_instance_type`, `aws_life_cycle`.
  `aws_hop_limit = 1` plays an instance whose metadata hop limit is 1: a token's answer to a client that is
  not on this server's own address (a container behind a Docker bridge is one hop further) never arrives, so
  the connection is closed unanswered; with 2 (our instances) it arrives.
- Azure IMDS (every request needs `Metadata: true`, 400 otherwise): Scheduled Events
  `GET /metadata/scheduledevents?api-version=2020-07-01` (`{"DocumentIncarnation", "Events": [...]}`) and
  `POST` of `{"StartRequests": [{"EventId": ...}]}` to acknowledge; `/metadata/instance/compute/name`,
  `/metadata/instance/compute` (with `vmSize` and `priority`: `azure_vm_size`, `azure_priority`, which is
  `Regular`, `Spot` or `Low`), the NIC's private address
  (`/metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress`, `format=text`) and the managed
  identity's token (`/metadata/identity/oauth2/token`): an access token for the `resource` asked for (`VAULT_TOKEN`
  for Key Vault's `https://vault.azure.net`, `IDENTITY_TOKEN` for anything else: a token is for one audience).
  Failures Azure documents for the token come first when asked for: `identity_failures` (statuses, e.g. 404
  while the identity is not ready, 410 while IMDS updates, 429 throttled, 500), one per request, in order.
- Azure Resource Manager: `POST <vm id>/deallocate?api-version=...` with the identity's bearer token: 202, or
  403 AuthorizationFailed when the identity has no role for it (`arm_allows_deallocate = False`); first the
  statuses in `arm_failures` (429 with `Retry-After: arm_retry_after`, 5xx), one per request.

Tests set `aws_action` / `azure_events` and read `requests`, `acks` and `deallocations`.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlparse

VM_NAME = "deepracer-vm"
SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
RESOURCE_GROUP = "deepracer-host"
VM_ID = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Compute/"
         f"virtualMachines/{VM_NAME}")
IDENTITY_TOKEN = "eyJ0eXAi.identity.token"
VAULT_RESOURCE = "https://vault.azure.net"
VAULT_TOKEN = "eyJ0eXAi.vault.token"
IDENTITY_ERRORS = {  # what IMDS's identity endpoint answers, as Azure documents the statuses
    404: {"error": "invalid_request", "error_description": "Identity not found"},
    410: {"error": "service_unavailable", "error_description": "IMDS is being updated"},
    429: {"error": "too_many_requests", "error_description": "IMDS throttle limit reached"},
    500: {"error": "unknown", "error_description": "Failed to retrieve token from the Active directory"},
}
ARM_ERRORS = {
    429: {"error": {"code": "TooManyRequests", "message": "The request is being throttled."}},
    503: {"error": {"code": "ServiceUnavailable", "message": "The service is temporarily unavailable."}},
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class MetadataStandin:
    url: str = ""
    aws_action: Optional[dict] = None
    azure_events: list[dict] = field(default_factory=list)
    arm_allows_deallocate: bool = True
    identity_failures: list[int] = field(default_factory=list)
    arm_failures: list[int] = field(default_factory=list)
    arm_retry_after: Optional[int] = None
    requests: list[Request] = field(default_factory=list)
    acks: list[Any] = field(default_factory=list)
    deallocations: list[str] = field(default_factory=list)
    aws_tokens: set[str] = field(default_factory=set)
    on_ack: Optional[Callable[[Any], None]] = None
    aws_role: str = "deepracer-host-role"
    aws_credentials: dict = field(default_factory=lambda: {
        "AccessKeyId": "ASIAIMDSSTANDIN00001", "SecretAccessKey": "imds-standin-secret", "Token": "imds-token"})
    aws_hop_limit: int = 2
    private_ip: str = "10.42.1.4"
    aws_instance_type: str = "g4dn.2xlarge"
    aws_life_cycle: str = "spot"
    azure_vm_size: str = "Standard_NC8as_T4_v3"
    azure_priority: str = "Spot"

    def expire_aws_tokens(self) -> None:
        self.aws_tokens.clear()

    def of(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == path]


def _handler(standin: MetadataStandin) -> type:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: Any = b"", content_type: str = "application/json",
                  headers: Optional[dict[str, str]] = None) -> None:
            data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> Request:
            parsed = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(self.command, parsed.path, parse_qs(parsed.query),
                              {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
            standin.requests.append(request)
            return request

        def do_PUT(self) -> None:
            request = self._record()
            if request.path == "/latest/api/token":
                if "x-aws-ec2-metadata-token-ttl-seconds" not in request.headers:
                    return self._send(400, "Missing TTL header", "text/plain")
                if standin.aws_hop_limit < 2 and self.client_address[0] != self.server.server_address[0]:
                    self.close_connection = True  # the answer dies on the bridge: the client sees none
                    return None
                token = uuid.uuid4().hex
                standin.aws_tokens.add(token)
                return self._send(200, token, "text/plain")
            self._send(404, "Not Found", "text/plain")

        def do_GET(self) -> None:
            request = self._record()
            if request.path.startswith("/latest/"):
                if request.headers.get("x-aws-ec2-metadata-token") not in standin.aws_tokens:
                    return self._send(401, "", "text/plain")
                if request.path == "/latest/meta-data/spot/instance-action" and standin.aws_action is not None:
                    return self._send(200, standin.aws_action)
                if request.path == "/latest/meta-data/local-ipv4":
                    return self._send(200, standin.private_ip, "text/plain")
                if request.path == "/latest/meta-data/instance-type":
                    return self._send(200, standin.aws_instance_type, "text/plain")
                if request.path == "/latest/meta-data/instance-life-cycle":
                    return self._send(200, standin.aws_life_cycle, "text/plain")
                if request.path == "/latest/meta-data/iam/security-credentials/":
                    return self._send(200, standin.aws_role, "text/plain")
                if request.path == f"/latest/meta-data/iam/security-credentials/{standin.aws_role}":
                    return self._send(200, {"Code": "Success", "LastUpdated": "2026-12-06T10:00:00Z",
                                            "Type": "AWS-HMAC", "Expiration": "2099-01-01T00:00:00Z",
                                            **standin.aws_credentials})
                return self._send(404, "Not Found", "text/plain")
            if request.path.startswith("/metadata/"):
                if request.headers.get("metadata") != "true":
                    return self._send(400, {"error": "Bad request. Required metadata header not specified"})
                if request.path == "/metadata/scheduledevents":
                    return self._send(200, {"DocumentIncarnation": len(standin.azure_events),
                                            "Events": standin.azure_events})
                if request.path == "/metadata/instance/compute/name":
                    return self._send(200, VM_NAME, "text/plain")
                if request.path == "/metadata/instance/compute":
                    return self._send(200, {"name": VM_NAME, "subscriptionId": SUBSCRIPTION,
                                            "resourceGroupName": RESOURCE_GROUP, "resourceId": VM_ID,
                                            "vmSize": standin.azure_vm_size, "priority": standin.azure_priority})
                if request.path == "/metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress":
                    if request.query.get("format") != ["text"]:
                        return self._send(200, {"privateIpAddress": standin.private_ip})
                    return self._send(200, standin.private_ip, "text/plain")
                if request.path == "/metadata/identity/oauth2/token":
                    if standin.identity_failures:
                        status = standin.identity_failures.pop(0)
                        return self._send(status, IDENTITY_ERRORS.get(status, {"error": "server_error"}))
                    resource = request.query.get("resource", [""])[0]
                    token = VAULT_TOKEN if resource.rstrip("/") == VAULT_RESOURCE else IDENTITY_TOKEN
                    return self._send(200, {"access_token": token, "token_type": "Bearer", "resource": resource})
            self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            request = self._record()
            if request.path == "/metadata/scheduledevents":
                if request.headers.get("metadata") != "true":
                    return self._send(400, {"error": "Bad request. Required metadata header not specified"})
                body = json.loads(request.body)
                standin.acks.append(body)
                if standin.on_ack:
                    standin.on_ack(body)
                return self._send(200, b"")
            if request.path == f"{VM_ID}/deallocate":
                if request.headers.get("authorization") != f"Bearer {IDENTITY_TOKEN}":
                    return self._send(401, {"error": {"code": "InvalidAuthenticationToken"}})
                if standin.arm_failures:
                    status = standin.arm_failures.pop(0)
                    retry_after = {"Retry-After": str(standin.arm_retry_after)} if standin.arm_retry_after else {}
                    return self._send(status, ARM_ERRORS.get(status, {"error": {"code": "InternalServerError"}}),
                                      headers=retry_after if status == 429 else None)
                if not standin.arm_allows_deallocate:
                    return self._send(403, {"error": {
                        "code": "AuthorizationFailed",
                        "message": "The client does not have authorization to perform action "
                                   "'Microsoft.Compute/virtualMachines/deallocate/action'"}})
                standin.deallocations.append(request.query.get("api-version", [""])[0])
                return self._send(202, b"")
            self._send(404, {"error": "not found"})

    return Handler


def start(host: str = "127.0.0.1") -> tuple[MetadataStandin, Callable[[], None]]:
    """The stand-in on `host` (default 127.0.0.1; a Docker network's gateway for containers) and a port of its
    own; returns it and the function that stops it."""
    standin = MetadataStandin()
    server = ThreadingHTTPServer((host, 0), _handler(standin))
    standin.url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

    return standin, stop
