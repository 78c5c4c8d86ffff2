"""Azure for tests, on this machine: Azurite's Blob service over HTTPS with bearer tokens, and a stand-in for
Azure's instance metadata service (the VM's id and its managed identity's tokens).

Azurite (npm, installed by scripts/test into .cache/node) takes Entra ID tokens only over HTTPS and checks
their issuer, audience and lifetime but not their signature, so the stand-in IMDS hands out unsigned tokens of
the right shape, and a self-signed certificate made here serves both Azurite and the fake blob servers.
Python's urllib trusts it through SSL_CERT_FILE, azure-core (requests) through REQUESTS_CA_BUNDLE or
`connection_verify`.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import re
import ssl
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, Optional

REPO_ROOT = Path(__file__).resolve().parent.parent
AZURITE = REPO_ROOT / ".cache" / "node" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"  # Azurite's built-in account
TENANT = "72f988bf-0000-4000-8000-000000000000"
VM_ID = "5e1f0c2a-7b3d-4e59-9a0b-1c2d3e4f5a6b"


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def storage_token(lifetime_s: int = 3600) -> str:
    """An unsigned JWT shaped like an Entra ID token for Azure Storage (Azurite's basic OAuth accepts it)."""
    now = int(time.time())
    claims = {"aud": "https://storage.azure.com", "iss": f"https://sts.windows.net/{TENANT}/", "iat": now - 60,
              "nbf": now - 60, "exp": now + lifetime_s, "oid": "a1a1a1a1-0000-4000-8000-00000000a1a1",
              "tid": TENANT}
    return f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(claims)}.c2lnbmF0dXJl"


class FakeCredential:
    """azure-core's TokenCredential with our unsigned tokens, for in-process clients."""

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        return AccessToken(storage_token(), int(time.time()) + 3600)


@dataclass
class Azurite:
    url: str  # the account's blob endpoint, path style: https://127.0.0.1:PORT/devstoreaccount1
    cert: Path

    def container(self, name: str):
        """A ContainerClient on the fake credential, for the tests' own reads and writes."""
        from infra.azure_blob import container_client

        return container_client(self.url, name, credential=FakeCredential(), connection_verify=str(self.cert))

    def new_container(self, prefix: str = "models"):
        import uuid

        client = self.container(f"{prefix}-{uuid.uuid4().hex[:10]}")
        client.create_container()
        return client


def start_azurite(directory: Path, cert: Path, key: Path) -> tuple[subprocess.Popen, str]:
    from tests import tiers  # imports pytest, which the helpers above do without

    tiers.require("azurite", "Azurite")
    if not AZURITE.exists():
        raise RuntimeError(f"{AZURITE} is missing: scripts/test installs Azurite (npm install azurite into "
                           ".cache/node)")
    log = open(directory / "azurite.log", "w+")
    process = subprocess.Popen(
        [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence", "--oauth", "basic",
         "--cert", str(cert), "--key", str(key), "--skipApiVersionCheck", "--disableTelemetry"],
        stdout=log, stderr=subprocess.STDOUT, cwd=directory)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        log.seek(0)
        found = re.search(r"successfully listens on (https://127\.0\.0\.1:\d+)", log.read())
        if found:
            return process, f"{found.group(1)}/{ACCOUNT}"
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    log.seek(0)
    raise RuntimeError(f"Azurite did not start: {log.read()[-2000:]}")


def azurite_server(directory: Path, cert: Path, key: Path) -> Iterator[Azurite]:
    """Generator for a fixture: Azurite's Blob service (in memory) for as long as the fixture lives."""
    process, url = start_azurite(directory, cert, key)
    try:
        yield Azurite(url, cert)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


# -- instance metadata ----------------------------------------------------------------------------------------

@dataclass
class Imds:
    """Azure's IMDS as the host and azure-identity use it: the Metadata header or 400, vmId, identity tokens."""

    url: str = ""
    vm_id: str = VM_ID
    token_requests: list[dict] = field(default_factory=list)
    warming_up: int = 0  # answer this many token requests with 404, as a new VM's identity endpoint does


def _imds_handler(state: Imds):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parts.query))
            if self.headers.get("Metadata") != "true":
                return self._reply(400, "application/json", json.dumps({"error": "bad_request"}))
            if parts.path == "/metadata/instance/compute/vmId" and query.get("format") == "text":
                return self._reply(200, "text/plain", state.vm_id)
            if parts.path == "/metadata/identity/oauth2/token":
                state.token_requests.append(query)
                if state.warming_up > 0:
                    state.warming_up -= 1
                    return self._reply(404, "application/json", json.dumps({"error": "not_found"}))
                now = int(time.time())
                return self._reply(200, "application/json", json.dumps({
                    "access_token": storage_token(), "expires_in": "3600", "expires_on": str(now + 3600),
                    "not_before": str(now - 60), "resource": query.get("resource", ""), "token_type": "Bearer"}))
            return self._reply(404, "text/plain", "")

        def _reply(self, status: int, content_type: str, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    return Handler


def imds_server() -> Iterator[Imds]:
    state = Imds()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _imds_handler(state))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


# -- a blob server that refuses first ------------------------------------------------------------------------

@dataclass
class RefusingBlobServer:
    """HTTPS, answers the first `refusals` requests with an Azure Storage error, then serves `body` (GET) or
    accepts it (PUT). Plays the minutes in which a new role assignment has not reached storage yet."""

    url: str = ""
    refusals: int = 2
    status: int = 403
    code: str = "AuthorizationPermissionMismatch"
    body: bytes = b""
    requests: list[tuple[str, dict]] = field(default_factory=list)
    received: Optional[bytes] = None


def refusing_blob_server(cert: Path, key: Path, state: RefusingBlobServer) -> Iterator[RefusingBlobServer]:
    class Handler(BaseHTTPRequestHandler):
        def _refuse(self) -> bool:
            state.requests.append((self.command, {k.lower(): v for k, v in self.headers.items()}))
            if state.refusals > 0:
                state.refusals -= 1
                body = f"<?xml version='1.0'?><Error><Code>{state.code}</Code></Error>".encode()
                self.send_response(state.status)
                self.send_header("x-ms-error-code", state.code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return True
            return False

        def do_GET(self) -> None:
            if not self._refuse():
                self.send_response(200)
                self.send_header("Content-Length", str(len(state.body)))
                self.end_headers()
                self.wfile.write(state.body)

        def do_PUT(self) -> None:
            data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if not self._refuse():
                state.received = data
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"https://127.0.0.1:{server.server_port}/{ACCOUNT}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def host_env(imds: Imds, cert: Path, **extra: str) -> dict[str, str]:
    """The environment host-storage.py runs with on the 'VM': our IMDS, our certificate, quick retries."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AWS_", "IDENTITY_", "MSI_"))}
    env.update(DR_IMDS_ENDPOINT=imds.url, SSL_CERT_FILE=str(cert), DR_STORAGE_RETRY_INTERVAL="0.05",
               DR_STORAGE_RETRY_SECONDS="20", **extra)
    return env


# -- fixtures (imported by the conftest.py of the test packages that use them) --------------------------------

import pytest  # noqa: E402 - only the fixtures below need pytest


@pytest.fixture(scope="session")
def azure_cert(tmp_path_factory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("azure-cert"))


@pytest.fixture(scope="session")
def azurite(tmp_path_factory, azure_cert) -> Iterator[Azurite]:
    yield from azurite_server(tmp_path_factory.mktemp("azurite"), *azure_cert)


@pytest.fixture
def azure_imds() -> Iterator[Imds]:
    yield from imds_server()
