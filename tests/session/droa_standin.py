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
  S3 API: moto's server) with DRoA's rules and messages: the handler's (car, track, object avoidance, SAC, action
  space: HTTP 400) and its workflow's reward-function validation (flake8, allowed imports, forbidden calls and
  strings: the model ends in ERROR with "Reward Function Validation ...");
- optionally, AWS WAF refusing the host's address (`waf_blocks_host`): 403 Forbidden for every API request.

Everything the server saw is kept in `requests`, so tests can look at what the client sent.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
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
# DRoA's source/libs/config/src/data/tracks.json: trackId -> enabled directions (written out from that file here,
# not taken from session.checks.droa_rules, so the stand-in judges independently of the client's pre-check).
_BOTH = {"CLOCKWISE", "COUNTER_CLOCKWISE"}
TRACKS = {
    **dict.fromkeys("2024_reinvent_champ 2022_april_open 2022_april_pro 2022_august_open 2022_august_pro 2022_july_pro "
                    "2022_june_open 2022_june_pro 2022_march_open 2022_march_pro 2022_may_open 2022_may_pro "
                    "2022_october_open 2022_october_pro 2022_reinvent_champ 2022_september_open 2022_september_pro "
                    "2022_summit_speedway arctic_open arctic_pro dubai_open jyllandsringen_open jyllandsringen_pro "
                    "penbay_open penbay_pro red_star_pro reInvent2019_track reInvent2019_wide thunder_hill_pro"
                    .split(), _BOTH),
    **dict.fromkeys("Albert Aragon Belille FS_June2020 July_2020 Monaco Monaco_building Spain_track".split(),
                    {"CLOCKWISE"}),
    **dict.fromkeys("2022_july_open AmericasGeneratedInclStart Austin Bowtie_track caecer_gp caecer_loop "
                    "Canada_Training China_track dubai_pro hamption_open hamption_pro LGSWide Mexico_track morgan_open "
                    "morgan_pro New_York_Track Oval_track red_star_open reinvent_base Singapore Singapore_building "
                    "thunder_hill_open Tokyo_Training_track Vegas_track Virtual_May19_Train_track".split(),
                    {"COUNTER_CLOCKWISE"}),
}
# DRoA's CarColor enum (model.smithy) and SimAppCarShells (workflow/constants/simulation.ts): the colours of its
# DEEPRACER shell, and the other shells' simulator ids.
CAR_COLORS = {"BLACK", "BLUE", "BROWN", "GOLDEN", "GOLDENPINK", "GREEN", "GREY", "ORANGE", "PINK", "PURPLE", "RED",
              "SKY_BLUE", "TEAL", "WHITE", "YELLOW"}
DEEPRACER_COLORS = {"BLACK", "BLUE", "GREY", "ORANGE", "PURPLE", "RED", "WHITE"}
# reward_func_validator/constants.py
ALLOWLIST_IMPORTS = ["math", "random", "numpy", "scipy", "shapely"]
FORBID_ACCESS = ["open", "exec", "eval", "compile", "input"]
FORBID_STRINGS = ["__import__", "load", "fromfile", "genfromtxt", "loadtxt", "tofile", "savez", "save", "savetxt",
                  "memmap"]
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
    # AWS WAF's AnonymousIpList (its HostingProviderIPList: e.g. Azure's ranges) in front of the API: every API
    # request from this "host" is refused, whatever its User-Agent or signature.
    waf_blocks_host: bool = False

    def __post_init__(self) -> None:
        self.requests: list[Seen] = []
        self.imports: list[dict[str, Any]] = []
        self.models: dict[str, dict[str, Any]] = {}
        self.import_errors: dict[str, str] = {}  # modelId -> the message its import workflow ends in ERROR with
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
        if self.waf_blocks_host:  # a WAF block: API Gateway's answer for it
            return _json(403, {"message": "Forbidden"}, "ForbiddenException")
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
                    self.models[model_id]["importErrorMessage"] = self.import_errors.get(model_id,
                                                                                      self.import_error_message)
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
        try:  # what DRoA's handler reads before answering; a missing or malformed file is its InternalFailure
            params = yaml.safe_load(self._read(f"{prefix}/training_params.yaml"))
            metadata = json.loads(self._read(f"{prefix}/model_metadata.json"))
            reward = self._read(f"{prefix}/reward_function.py").decode()
            hyperparameters = json.loads(self._read(f"{prefix}/ip/hyperparameters.json"))
            refusal = handler_refusal(params, metadata, hyperparameters)
        except Exception:  # noqa: BLE001 - as DRoA's handler: any exception is an InternalFailure
            return _json(500, {"message": "Internal Failure"}, "InternalFailureError")
        if refusal:
            return _json(400, {"message": refusal}, "BadRequestError")
        model_id = secrets.token_hex(8)
        self.models[model_id] = _model(model_id, body["modelName"], "IMPORTING")
        finding = reward_function_finding(reward)  # the workflow's first step, after the handler answered
        if finding:
            self.import_errors[model_id] = f"Reward Function Validation {finding}"
            self.statuses.setdefault(model_id, ["IMPORTING", "ERROR"])
        self.statuses.setdefault(model_id, list(self.status_script))
        return _json(200, {"modelId": model_id})

    def _read(self, key: str) -> bytes:
        return self.s3_client.get_object(Bucket=self.upload_bucket, Key=key)["Body"].read()


def handler_refusal(params: dict[str, Any], metadata: dict[str, Any], hyperparameters: dict[str, Any]) -> str:
    """DRoA's ImportModel handler's message for what it refuses with HTTP 400 ('' when nothing), in its order:
    the car, the track, object avoidance, SAC's rules, the continuous action space (importModel.ts,
    api/utils/validation.ts, import-workflow/utils/ImportHelper.ts). An exception here is its InternalFailure."""
    shell, color = "DEEPRACER", "WHITE"  # ImportHelper.getCarCustomization
    if params.get("BODY_SHELL_TYPE") == "deepracer" and params.get("CAR_COLOR"):
        upper = params["CAR_COLOR"].upper()  # a number has no .upper(): DRoA's TypeError, an InternalFailure
        color = upper if upper in CAR_COLORS else color
    if shell == "DEEPRACER" and color not in DEEPRACER_COLORS:
        return f"Invalid car customization. Car shell {shell} is not available in color {color}."
    track = params.get("WORLD_NAME")
    directions = TRACKS.get(track, set())
    direction = next(iter(directions)) if len(directions) == 1 else (
        "CLOCKWISE" if params.get("TRACK_DIRECTION_CLOCKWISE") is True else "COUNTER_CLOCKWISE")
    if direction not in directions:
        return f"Invalid track configuration. Track {track} is not available in direction {direction}."
    if params.get("RACE_TYPE") == "OBJECT_AVOIDANCE":
        count = params.get("NUMBER_OF_OBSTACLES")
        positions = params.get("OBJECT_POSITIONS") or []
        if not count or count > 6:
            return "Number of obstacle positions is invalid."
        if positions and params.get("RANDOMIZE_OBSTACLE_LOCATIONS") is not True:
            if count != len(positions):
                return "Obstacle positions must be equal to number of objects."
            fractions = sorted(float(item.split(",")[0]) for item in positions)
            if fractions[0] < 0.07:
                return "First obstacle position is invalid."
            if fractions[-1] > 0.9:
                return "Last obstacle position is invalid."
            if any(b - a < 0.13 for a, b in zip(fractions, fractions[1:])):
                return "Obstacle position distances are invalid."
    algorithm, space_type = metadata.get("training_algorithm"), metadata.get("action_space_type")
    if algorithm == "sac" and space_type == "discrete":
        return "Agent algorithm SAC does not work with discrete action space."
    episodes = hyperparameters.get("num_episodes_between_training")
    if algorithm == "sac" and (type(episodes) not in (int, float) or episodes != 1):  # JavaScript's !== 1
        return "Invalid hyperparameter number of episodes between training for SAC agent algorithm."
    if space_type == "continuous" and isinstance(metadata.get("action_space"), dict):
        space = metadata["action_space"]
        if space["speed"]["low"] >= space["speed"]["high"]:
            return "Invalid action space speeds."
        if space["steering_angle"]["low"] >= space["steering_angle"]["high"]:
            return "Invalid action space steering angles."
    return ""


def reward_function_finding(source: str) -> str:
    """The message of the first finding of DRoA's reward-function validation Lambda's static suite, which stops
    at its first failure ('' when none): flake8, the import allow-list, the forbidden calls (with the dotted-name
    walk that fails on a call or attribute of anything but a name), the forbidden strings, then the signature
    (reward_func_validator/test_reward_function.py; flake8 with the options of its run_flake8)."""
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "reward_function.py")
        with open(path, "w") as handle:
            handle.write(source)
        lint = subprocess.run([sys.executable, "-m", "flake8", "--isolated", path, "--format=%(code)s:%(row)d:%(text)s",
                               "--select=E,F", "--ignore=E5,E226,E261"], capture_output=True, text=True)
    for line in lint.stdout.splitlines():
        parts = line.split(":")  # the Lambda's _parse_flake8_line
        return " : ".join(parts[3:]) if len(parts) > 3 else parts[2]
    tree = ast.parse(source)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    illegal = [name for name in imported if str(name).split(".")[0] not in ALLOWLIST_IMPORTS]
    if illegal:
        return f"The reward function contains illegal import(s): {illegal}"
    names: list[str] = []

    def dotted(node: ast.AST, tail: list[str]) -> list[str]:
        if isinstance(node, ast.Name):
            return [node.id, *tail]
        if isinstance(node, ast.Call):
            for argument in node.args:
                collect(argument)
            return dotted(node.func, tail)
        if isinstance(node, ast.Attribute):
            return dotted(node.value, [node.attr, *tail])
        raise TypeError("can only join an iterable")  # what ".".join(None) raises in the Lambda

    def collect(node: ast.AST) -> None:
        if isinstance(node, (ast.Call, ast.Attribute)):
            names.append(".".join(dotted(node, [])))
            return
        for child in ast.iter_child_nodes(node):
            collect(child)

    try:
        collect(tree)
    except TypeError as error:
        return str(error)
    if any(name in FORBID_ACCESS for name in names):
        return f"The reward function contains forbidden builtins: {[n for n in names if n in FORBID_ACCESS]}"
    for word in FORBID_STRINGS:
        if word in source:
            return (f'Your code snippet contains a restricted string "{word}" that is not allowed. Please remove or '
                    'replace the string and try again.')
    function = next((node for node in tree.body if isinstance(node, ast.FunctionDef)
                     and node.name == "reward_function"), None)
    if function is not None:
        args = function.args
        if len(args.posonlyargs + args.args + args.kwonlyargs) + bool(args.vararg) + bool(args.kwarg) != 1:
            return "Invalid reward function signature. Should be def reward_function(params)"
    return ""


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
