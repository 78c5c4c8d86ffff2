"""A stand-in for a DeepRacer on AWS (DRoA) install, for the DRoA client's tests. It is not DRoA.

One local HTTP server plays the parts of a real install that the client talks to, from DRoA's published
sources (aws-solutions/deepracer-on-aws) and Cognito's JSON protocol:

- the web app's `/env.js` (`window.EnvironmentConfig = {...};`, as DRoA's deployment writes it), and
  CloudFront's habit of answering any missing file with index.html and HTTP 200;
- Cognito (JSON 1.1 on `POST /`, by `X-Amz-Target`): `InitiateAuth` (USER_PASSWORD_AUTH, REFRESH_TOKEN_AUTH,
  the NEW_PASSWORD_REQUIRED challenge), `GetId`, `GetCredentialsForIdentity`, with Cognito's error shapes;
- the API under `/prod`, behind a firewall rule that refuses non-browser user agents (DRoA's WAF Bot Control):
  `GET /models`, `GET /models/{id}`, `POST /importmodel`, each checking a SigV4
  signature (`execute-api`, the credentials it issued) with its own implementation of the algorithm, and the
  import checking the request body and, like DRoA's handler, the uploaded files in the upload bucket (a real
  S3 API: moto's server) and a few of DRoA's validation rules with DRoA's messages.

Everything the server saw is kept in `requests`, so tests can look at what the client sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

import yaml

REGION = "eu-central-1"
USER_POOL_ID = f"{REGION}_Ab12Cd34E"
CLIENT_ID = "5k1example2client3id4abcd"
IDENTITY_POOL_ID = f"{REGION}:0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
STAGE = "/prod"
# DRoA's tracks.json, a few of them: trackId -> enabled directions.
TRACKS = {"reInvent2019_wide": {"CLOCKWISE", "COUNTER_CLOCKWISE"},
          "2024_reinvent_champ": {"CLOCKWISE", "COUNTER_CLOCKWISE"},
          "2022_july_open": {"COUNTER_CLOCKWISE"}}
_MODEL_NAME = re.compile(r"^[a-zA-Z0-9-]+$")
_UPLOAD_PATH = re.compile(r"uploads/models/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                   r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})")


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    target: str = ""


@dataclass
class DroaStandIn:
    s3_client: Any  # boto3 S3 client on the upload bucket's server, to read what was uploaded
    upload_bucket: str
    users: dict[str, str] = field(default_factory=dict)  # username -> password
    new_password_required: set[str] = field(default_factory=set)
    users_without_group: set[str] = field(default_factory=set)
    credential_lifetime: float = 3600.0
    env_js: Optional[str] = None  # None: the realistic file; "" : no file (CloudFront answers index.html)
    api_override: Optional[Callable[[str, str], Optional[tuple[int, dict[str, str], bytes]]]] = None
    # modelId -> the statuses GET /models/{id} answers, one per call (the last repeats)
    statuses: dict[str, list[str]] = field(default_factory=dict)
    import_error_message: str = ""
    status_script: list[str] = field(default_factory=lambda: ["IMPORTING", "READY"])

    def __post_init__(self) -> None:
        self.requests: list[Seen] = []
        self.imports: list[dict[str, Any]] = []
        self.models: dict[str, dict[str, Any]] = {}
        self.issued: dict[str, tuple[str, str]] = {}  # access key -> (secret, session token)
        self.id_tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.identities: set[str] = set()
        self.logins = 0
        self.refreshes = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "DroaStandIn":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def environment_js(self) -> str:
        config = {"apiEndpointUrl": f"{self.url}{STAGE}/", "userPoolId": USER_POOL_ID,
                  "userPoolClientId": CLIENT_ID, "identityPoolId": IDENTITY_POOL_ID, "region": REGION,
                  "uploadBucketName": self.upload_bucket}
        return f"window.EnvironmentConfig = {json.dumps(config)};"

    def add_model(self, name: str, status: str = "READY") -> str:
        model_id = secrets.token_hex(8)
        self.models[model_id] = _model(model_id, name, status)
        return model_id

    # -- Cognito -----------------------------------------------------------------------------------------------

    def cognito(self, target: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        operation = target.rsplit(".", 1)[-1]
        if target.startswith("AWSCognitoIdentityProviderService.") and operation == "InitiateAuth":
            return self._initiate_auth(body)
        if target.startswith("AWSCognitoIdentityService.") and operation in ("GetId", "GetCredentialsForIdentity"):
            if body.get("IdentityPoolId", IDENTITY_POOL_ID) != IDENTITY_POOL_ID:
                return _cognito_error("ResourceNotFoundException", f"IdentityPool '{body.get('IdentityPoolId')}' "
                                                                   "not found.")
            logins = body.get("Logins") or {}
            provider = f"cognito-idp.{REGION}.amazonaws.com/{USER_POOL_ID}"
            if set(logins) != {provider} or logins[provider] not in self.id_tokens:
                return _cognito_error("NotAuthorizedException", "Invalid login token. Not a valid OpenId Connect "
                                                                "identity token.")
            user = logins[provider].split(".", 1)[0]
            if operation == "GetId":
                identity = f"{REGION}:{secrets.token_hex(4)}-0000-4000-8000-{secrets.token_hex(6)}"
                self.identities.add(identity)
                return 200, {"IdentityId": identity}
            if body.get("IdentityId") not in self.identities:
                return _cognito_error("ResourceNotFoundException", "Identity not found.")
            if user in self.users_without_group:
                return _cognito_error("InvalidIdentityPoolConfigurationException",
                                      "Ambiguous role mapping rules for: cognito-idp provider were denied.")
            key = "ASIA" + secrets.token_hex(8).upper()
            secret, token = secrets.token_urlsafe(30), secrets.token_urlsafe(60)
            self.issued[key] = (secret, token)
            return 200, {"IdentityId": body["IdentityId"],
                         "Credentials": {"AccessKeyId": key, "SecretKey": secret, "SessionToken": token,
                                         "Expiration": time.time() + self.credential_lifetime}}
        return _cognito_error("UnknownOperationException", f"unknown target {target}")

    def _initiate_auth(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("ClientId") != CLIENT_ID:
            return _cognito_error("ResourceNotFoundException",
                                  f"User pool client {body.get('ClientId')} does not exist.")
        flow, params = body.get("AuthFlow"), body.get("AuthParameters") or {}
        if flow == "REFRESH_TOKEN_AUTH":
            token = params.get("REFRESH_TOKEN")
            if token not in self.refresh_tokens:
                return _cognito_error("NotAuthorizedException", "Invalid Refresh Token")
            self.refreshes += 1
            return 200, {"AuthenticationResult": {"IdToken": self._id_token(token.split(".", 1)[0]),
                                                  "AccessToken": secrets.token_urlsafe(20), "ExpiresIn": 3600,
                                                  "TokenType": "Bearer"}, "ChallengeParameters": {}}
        if flow != "USER_PASSWORD_AUTH":
            return _cognito_error("InvalidParameterException", f"{flow} flow not enabled for this client")
        user, password = params.get("USERNAME"), params.get("PASSWORD")
        if user not in self.users:
            return _cognito_error("UserNotFoundException", "User does not exist.")
        if password != self.users[user]:
            return _cognito_error("NotAuthorizedException", "Incorrect username or password.")
        self.logins += 1
        if user in self.new_password_required:
            return 200, {"ChallengeName": "NEW_PASSWORD_REQUIRED", "Session": secrets.token_urlsafe(40),
                         "ChallengeParameters": {"USER_ID_FOR_SRP": user, "requiredAttributes": "[]",
                                                 "userAttributes": "{}"}}
        refresh = f"{user}.{secrets.token_urlsafe(30)}"
        self.refresh_tokens.add(refresh)
        return 200, {"AuthenticationResult": {"IdToken": self._id_token(user), "AccessToken": secrets.token_urlsafe(20),
                                              "RefreshToken": refresh, "ExpiresIn": 3600, "TokenType": "Bearer"},
                     "ChallengeParameters": {}}

    def _id_token(self, user: str) -> str:
        token = f"{user}.{secrets.token_urlsafe(30)}"
        self.id_tokens.add(token)
        return token

    # -- the API -----------------------------------------------------------------------------------------------

    def api(self, method: str, raw_path: str, headers: dict[str, str],
            body: bytes) -> tuple[int, dict[str, str], bytes]:
        agent = {k.lower(): v for k, v in headers.items()}.get("user-agent", "")
        if not agent.startswith("Mozilla/"):  # DRoA's WAF (Bot Control) blocks non-browser user agents
            return _json(403, {"message": "Forbidden"})
        problem = verify_sigv4(method, raw_path, headers, body, self.issued)
        if problem:
            return _json(403, {"message": problem})
        if self.api_override is not None:
            answer = self.api_override(method, raw_path)
            if answer is not None:
                return answer
        path, _, query = raw_path.partition("?")
        path = path[len(STAGE):]
        if method == "GET" and path == "/models":
            return self._list(urllib.parse.parse_qs(query).get("token", [None])[0])
        if method == "GET" and path.startswith("/models/"):
            model_id = urllib.parse.unquote(path[len("/models/"):])
            if model_id not in self.models:
                return _json(404, {"message": f"Model {model_id} not found."}, "NotFoundError")
            script = self.statuses.get(model_id)
            if script:
                status = script.pop(0) if len(script) > 1 else script[0]
                self.models[model_id]["status"] = status
                if status == "ERROR":
                    self.models[model_id]["importErrorMessage"] = self.import_error_message
            return _json(200, {"model": self.models[model_id]})
        if method == "POST" and path == "/importmodel":
            return self._import(body)
        return _json(403, {"message": "Missing Authentication Token"})

    def _list(self, token: Optional[str]) -> tuple[int, dict[str, str], bytes]:
        items = list(self.models.values())
        start = int(token) if token else 0
        page = items[start:start + 2]  # small pages, so clients must follow the token
        answer: dict[str, Any] = {"models": page}
        if start + 2 < len(items):
            answer["token"] = str(start + 2)
        return _json(200, answer)

    def _import(self, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        body = json.loads(raw)
        self.imports.append(body)
        unexpected = sorted(set(body) - {"s3Bucket", "s3Path", "modelName", "modelDescription"})
        if unexpected:
            return _json(400, {"message": f"unexpected members {unexpected}", "fieldList": []}, "ValidationException")
        if not body.get("modelName") or not body.get("s3Bucket") or not body.get("s3Path"):
            return _json(400, {"message": "Missing required fields"}, "BadRequestError")
        if not _MODEL_NAME.match(body["modelName"]) or len(body["modelName"]) > 64:
            return _json(400, {"message": "Model name must contain only alphanumeric characters and hyphens; and must "
                                          "be less than or equal to 64 characters in length"}, "BadRequestError")
        if body["s3Bucket"] != self.upload_bucket or not _UPLOAD_PATH.fullmatch(body["s3Path"]):
            return _json(400, {"message": f"not an upload location: {body['s3Bucket']}/{body['s3Path']}"},
                         "BadRequestError")
        prefix = body["s3Path"]
        try:  # what DRoA's handler reads before answering; a missing file is its InternalFailure
            params = yaml.safe_load(self._read(f"{prefix}/training_params.yaml"))
            metadata = json.loads(self._read(f"{prefix}/model_metadata.json"))
            self._read(f"{prefix}/reward_function.py")
            json.loads(self._read(f"{prefix}/ip/hyperparameters.json"))
        except Exception:  # noqa: BLE001 - a missing or malformed file is DRoA's InternalFailure
            return _json(500, {"message": "Internal Failure"}, "InternalFailureError")
        track = params.get("WORLD_NAME")
        directions = TRACKS.get(track, set())
        direction = next(iter(directions)) if len(directions) == 1 else (
            "CLOCKWISE" if params.get("TRACK_DIRECTION_CLOCKWISE") is True else "COUNTER_CLOCKWISE")
        if direction not in directions:
            return _json(400, {"message": f"Invalid track configuration. Track {track} is not available in direction "
                                          f"{direction}."}, "BadRequestError")
        if metadata.get("training_algorithm") == "sac" and metadata.get("action_space_type") == "discrete":
            return _json(400, {"message": "Agent algorithm SAC does not work with discrete action space."},
                         "BadRequestError")
        model_id = secrets.token_hex(8)
        self.models[model_id] = _model(model_id, body["modelName"], "IMPORTING")
        self.statuses.setdefault(model_id, list(self.status_script))
        return _json(200, {"modelId": model_id})

    def _read(self, key: str) -> bytes:
        return self.s3_client.get_object(Bucket=self.upload_bucket, Key=key)["Body"].read()


def verify_sigv4(method: str, raw_path: str, headers: dict[str, str], body: bytes,
                 issued: dict[str, tuple[str, str]], region: str = REGION, service: str = "execute-api") -> str:
    """Why the request's SigV4 signature is not right ('' when it is), checked from scratch (the SigV4 algorithm:
    canonical request, string to sign, HMAC key chain), not with the SDK that made it."""
    lower = {k.lower(): v for k, v in headers.items()}
    match = _AUTH.fullmatch(lower.get("authorization", ""))
    if not match:
        return "Missing Authentication Token" if "authorization" not in lower else "Authorization header malformed"
    key, day, scope_region, scope_service, signed, signature = match.groups()
    if key not in issued:
        return "The security token included in the request is invalid."
    secret, token = issued[key]
    if lower.get("x-amz-security-token") != token:
        return "The security token included in the request is invalid."
    if (scope_region, scope_service) != (region, service):
        return f"Credential should be scoped to a valid region and service ({scope_region}/{scope_service})"
    amz_date = lower.get("x-amz-date", "")
    if not re.fullmatch(r"\d{8}T\d{6}Z", amz_date) or amz_date[:8] != day:
        return "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP"
    sent = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    if abs((datetime.now(timezone.utc) - sent).total_seconds()) > 300:
        return "Signature expired"
    names = signed.split(";")
    if names != sorted(names) or not {"host", "x-amz-date", "x-amz-security-token"} <= set(names):
        return f"SignedHeaders {signed} must list host, x-amz-date and x-amz-security-token, sorted"
    if any(name not in lower for name in names):
        return "a signed header was not sent"
    path, _, query = raw_path.partition("?")
    pairs = sorted((urllib.parse.quote(urllib.parse.unquote(k), safe="-_.~"),
                    urllib.parse.quote(urllib.parse.unquote(v), safe="-_.~"))
                   for k, _, v in (part.partition("=") for part in query.split("&") if part))
    canonical = "\n".join([
        method,
        urllib.parse.quote(path, safe="/~"),  # services other than S3 encode the (already encoded) path again
        "&".join(f"{k}={v}" for k, v in pairs),
        "".join(f"{name}:{' '.join(lower[name].split())}\n" for name in names),
        signed,
        hashlib.sha256(body).hexdigest(),
    ])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signing_key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "The request signature we calculated does not match the signature you provided."
    return ""


def _model(model_id: str, name: str, status: str) -> dict[str, Any]:
    return {"modelId": model_id, "name": name, "status": status, "trainingStatus": "COMPLETED",
            "createdAt": "2026-05-01T10:00:00Z", "fileSizeInBytes": 1234,
            "carCustomization": {"carColor": "BLACK", "carShell": "DEEPRACER"}}


def _json(status: int, body: dict[str, Any], error_type: str = "") -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"}
    if error_type:
        headers["x-amzn-ErrorType"] = error_type
    return status, headers, json.dumps(body).encode()


def _cognito_error(code: str, message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"__type": code, "message": message}


_INDEX_HTML = b"<!doctype html><html><head><title>DeepRacer</title></head><body><div id=root></div></body></html>"


def _handler(standin: DroaStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet: tests look at `requests` instead
            pass

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _record(self, body: bytes, target: str = "") -> None:
            with standin._lock:
                standin.requests.append(Seen(self.command, self.path, dict(self.headers.items()), body, target))

        def do_GET(self) -> None:
            self._dispatch(b"")

        def do_POST(self) -> None:
            self._dispatch(self._body())

        def _dispatch(self, body: bytes) -> None:
            target = self.headers.get("X-Amz-Target", "")
            self._record(body, target)
            if self.command == "POST" and target:
                status, answer = standin.cognito(target, json.loads(body or b"{}"))
                headers = {"Content-Type": "application/x-amz-json-1.1"}
                if status != 200:
                    headers["x-amzn-ErrorType"] = answer["__type"]
                self._answer(status, headers, json.dumps(answer).encode())
            elif self.path.startswith(STAGE + "/"):
                self._answer(*standin.api(self.command, self.path, dict(self.headers.items()), body))
            elif self.command == "GET" and self.path == "/env.js" and standin.env_js != "":
                text = standin.env_js if standin.env_js is not None else standin.environment_js()
                self._answer(200, {"Content-Type": "application/javascript"}, text.encode())
            else:  # CloudFront serves the app for any path it does not have
                self._answer(200, {"Content-Type": "text/html"}, _INDEX_HTML)

    return Handler
