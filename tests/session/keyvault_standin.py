"""A local HTTP server that PLAYS ONE AZURE KEY VAULT'S SECRETS for the tests (no cloud is asked).

It follows Key Vault's documented data-plane REST API:

- Set Secret, https://learn.microsoft.com/rest/api/keyvault/secrets/set-secret/set-secret:
  `PUT /secrets/{secret-name}?api-version=...` with a JSON body whose `value` (a string) is required; the name
  matches `^[0-9a-zA-Z-]+$`; 200 with the secret bundle (`value`, `id` = `<vault>/secrets/<name>/<version>`,
  `attributes`); each set makes a new version.
- Get Secret, https://learn.microsoft.com/rest/api/keyvault/secrets/get-secret/get-secret: `GET
  /secrets/{secret-name}?api-version=...`, the newest version (404 SecretNotFound when there is none).
- Its refusals, https://learn.microsoft.com/azure/key-vault/general/rest-error-codes: 401 without a bearer token
  (with the `WWW-Authenticate: Bearer authorization=..., resource="https://vault.azure.net"` challenge), 401 for a
  token that is not for Key Vault (another audience), 403 Forbidden (inner code ForbiddenByRbac) when the caller's
  role does not allow the action; an api-version it does not know is 400 BadParameter "The specified version (...)
  is not recognized" (the message as Azure/azure-sdk-for-net#14789 quotes it).

The bearer token Key Vault takes is the one the metadata stand-in issues for `https://vault.azure.net`
(tests/session/metadata_standin.py VAULT_TOKEN). Tests set `forbidden` (403 for that many more set requests: a
role assignment that has not applied yet), `allows_set` (False: the role never allows it), and read `versions`
and `requests`.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlparse

from tests.session.metadata_standin import VAULT_RESOURCE, VAULT_TOKEN, Request

API_VERSIONS = ("7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01")
NAME = re.compile(r"[0-9a-zA-Z-]+")
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@dataclass
class KeyVaultStandin:
    url: str = ""
    versions: dict[str, list[str]] = field(default_factory=dict)  # secret name -> its values, oldest first
    forbidden: int = 0
    allows_set: bool = True
    requests: list[Request] = field(default_factory=list)

    def secret_url(self, name: str) -> str:
        return f"{self.url}/secrets/{name}"

    def value(self, name: str) -> str:
        return self.versions[name][-1]


def _error(code: str, message: str, inner: str = "") -> dict:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return {"error": error}


def _handler(vault: KeyVaultStandin) -> type:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _refused(self, request: Request) -> bool:
            """Key Vault's order: the caller is authenticated first, then the version is checked."""
            authorization = request.headers.get("authorization", "")
            if not authorization.startswith("Bearer "):
                self._send(401, _error("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."),
                           {"WWW-Authenticate": f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
                                                f'resource="{VAULT_RESOURCE}"'})
                return True
            if authorization != f"Bearer {VAULT_TOKEN}":
                self._send(401, _error("Unauthorized", "AKV10022: Invalid audience. Expected "
                                                       f"{VAULT_RESOURCE}, found another."))
                return True
            version = request.query.get("api-version", [""])[0]
            if version not in API_VERSIONS:
                self._send(400, _error("BadParameter", f"The specified version ({version}) is not recognized. "
                                                       f"Consider using the latest supported version "
                                                       f"({API_VERSIONS[-1]})."))
                return True
            return False

        def _record(self) -> tuple[Request, str]:
            parsed = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(self.command, parsed.path, parse_qs(parsed.query),
                              {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
            vault.requests.append(request)
            match = re.fullmatch(r"/secrets/([^/]+)/?", parsed.path)
            return request, match.group(1) if match else ""

        def do_PUT(self) -> None:
            request, name = self._record()
            if not name:
                return self._send(404, _error("NotFound", "The requested resource was not found."))
            if self._refused(request):
                return None
            if not NAME.fullmatch(name):
                return self._send(400, _error("BadParameter", "The request URI contains an invalid name: " + name))
            if vault.forbidden > 0 or not vault.allows_set:
                vault.forbidden = max(0, vault.forbidden - 1)
                return self._send(403, _error(
                    "Forbidden", "Caller is not authorized to perform action on resource. Action: "
                                 "'Microsoft.KeyVault/vaults/secrets/setSecret/action'", "ForbiddenByRbac"))
            try:
                body = json.loads(request.body)
                value = body["value"]
                if not isinstance(value, str):
                    raise TypeError(value)
            except (ValueError, KeyError, TypeError):
                return self._send(400, _error("BadParameter", "Property value is required and must be a string."))
            vault.versions.setdefault(name, []).append(value)
            self._send(200, {"value": value, "id": f"{vault.secret_url(name)}/{uuid.uuid4().hex}",
                             "attributes": {"enabled": True, "recoveryLevel": "Recoverable+Purgeable"}})

        def do_GET(self) -> None:
            request, name = self._record()
            if not name:
                return self._send(404, _error("NotFound", "The requested resource was not found."))
            if self._refused(request):
                return None
            if not vault.versions.get(name):
                return self._send(404, _error("SecretNotFound", f"A secret with (name/id) {name} was not found in "
                                                                "this key vault."))
            self._send(200, {"value": vault.value(name), "id": f"{vault.secret_url(name)}/latest",
                             "attributes": {"enabled": True}})

    return Handler


def start() -> tuple[KeyVaultStandin, Callable[[], None]]:
    """The stand-in on 127.0.0.1 and a port of its own; returns it and the function that stops it."""
    vault = KeyVaultStandin()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(vault))
    vault.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

    return vault, stop
