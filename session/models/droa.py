"""DeepRacer on AWS (DRoA): push an exported model folder into an install through its web API.

DRoA is the AWS Solution (CloudFront web app, Cognito, API Gateway, S3) that replaced the DeepRacer console.
It has no API for scripts, so this module speaks to the web app's own API the way the browser does:

1. discovery: `<url>/env.js` sets `window.EnvironmentConfig` (region, user pool and its app client, identity
   pool, API endpoint, upload bucket);
2. login: Cognito `USER_PASSWORD_AUTH` -> ID token -> identity pool -> temporary AWS credentials (an hour);
3. upload: every file of the folder to `s3://<uploadBucketName>/uploads/models/<uuid>/` with those credentials
   (the users' role may put objects there, not read them: each PUT carries Content-MD5, so S3 checks the bytes);
   Before the upload: DRoA's import rules on the files (session.checks.droa_rules: what its handler and its
   reward-function validator refuse), and one signed `GET /models`, which AWS WAF refuses from hosting-provider
   addresses (an Azure VM) as it would refuse the import;
4. import: SigV4-signed (`execute-api`) `POST /importmodel {s3Bucket, s3Path, modelName, modelDescription}` ->
   `modelId`. DRoA checks the files at once (HTTP 400 with a message) and then in a workflow (model status
   IMPORTING -> READY, or ERROR with `importErrorMessage`), which `wait_for_import` polls via `GET /models/{id}`.

The password serves the one login call and is dropped; it is never written anywhere, logged (the SDK's debug
logs are held back while secrets pass through it), or put in an error message. Nothing is cached on disk:
DRfC keeps the temporary credentials in ~/.droa-cache; one login per command is cheap and leaves nothing on the
host to steal. Credentials about to expire are renewed in memory with Cognito's refresh token.

Every failure leaves as a `DroaError` whose text is one line a user can act on. boto3 is imported on first use.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Union

from session.checks import droa_rules
from session.checks.tracks import split_direction
from session.core.errors import DeepracerError
from session.core.problems import Problem
from session.core.text import human_size

if TYPE_CHECKING:  # pragma: no cover
    from botocore.client import BaseClient

PASSWORD_ENV = "DR_DROA_PASSWORD"
UPLOAD_PREFIX = "uploads/models"
MAX_IMPORT_BYTES = 1024 ** 3  # the web app refuses bigger folders ("must be under 1GB")
# What the import reads (ImportModel handler, model-validation Lambda); FORMATS.md §4.5.
REQUIRED_FILES = ("model_metadata.json", "reward_function.py", "training_params.yaml", "ip/hyperparameters.json",
                  "model/model_metadata.json", "model/.coach_checkpoint")
TRAINING_PARAMS = "training_params.yaml"
READY, ERROR, IMPORTING = "READY", "ERROR", "IMPORTING"

_ENV_KEYS = {  # window.EnvironmentConfig key -> DroaConfig field
    "region": "region",
    "userPoolId": "user_pool_id",
    "userPoolClientId": "user_pool_client_id",
    "identityPoolId": "identity_pool_id",
    "apiEndpointUrl": "api_endpoint_url",
    "uploadBucketName": "upload_bucket",
}
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
_MODEL_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")  # DRoA's ImportModel rules, checked before anything is uploaded
_DESCRIPTION = re.compile(r"[A-Za-z0-9 -]{0,255}")
# The API sits behind AWS WAF with Bot Control, which blocks non-browser user agents; the web app is a browser.
_USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
               "Safari/537.36")
# DRoA's API Gateway sits behind AWS WAF with, among others, AWSManagedRulesBotControlRuleSet and
# AWSManagedRulesAnonymousIpList (source/apps/infra/lib/constructs/api/api.ts); the latter's HostingProviderIPList
# blocks cloud providers' addresses other than AWS's. Such a block answers 403 {"message": "Forbidden"}.
WAF_REFUSAL = ("DRoA's API refused this host's address (AWS WAF blocks hosting-provider/anonymous IPs, e.g. an Azure "
               "VM): run import-droa from an AWS host or your own machine")
_RENEW_BEFORE = timedelta(minutes=5)
_SDK_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3")
_ENV_JS_LIMIT = 1024 * 1024
_MESSAGE_LIMIT = 400

Report = Callable[[str], None]
"""Receives one line of progress for a person (what is uploaded, what DRoA says)."""
ClientFactory = Callable[[str, str, Optional["TemporaryCredentials"]], "BaseClient"]
"""(service, region, credentials or None for Cognito's unsigned calls) -> a boto3 client."""
Source = Union[str, "os.PathLike[str]", Mapping[str, Union[str, "os.PathLike[str]"]]]
"""A folder, or {path inside the model folder ("model/x.ckpt.index"): local file}."""


class DroaError(DeepracerError):
    """A DRoA failure; `str()` is one line for the user and never holds the password."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class DroaRulesError(DroaError):
    """What DRoA's import would refuse, found before uploading: one line per finding (`problems`)."""

    def __init__(self, where: str, problems: list[Problem]) -> None:
        self.problems = problems
        lines = [f"{where}: DRoA would refuse this import ({len(problems)} finding{'s' if len(problems) != 1 else ''}"
                 "; nothing was uploaded):"] + [str(problem) for problem in problems]
        DeepracerError.__init__(self, "\n".join(" ".join(line.split()) for line in lines))


@dataclass(frozen=True)
class DroaConfig:
    """What `<site>/env.js` says about an install."""

    site_url: str
    region: str
    user_pool_id: str
    user_pool_client_id: str
    identity_pool_id: str
    api_endpoint_url: str
    upload_bucket: str

    @property
    def login_provider(self) -> str:
        """The identity pool's name for the user pool: the key of the ID token in `Logins`."""
        return f"cognito-idp.{self.region}.amazonaws.com/{self.user_pool_id}"


@dataclass(frozen=True)
class TemporaryCredentials:
    access_key: str
    secret_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: Optional[datetime] = None


@dataclass(frozen=True)
class DroaModel:
    """A model as `GET /models` and `GET /models/{id}` describe it."""

    model_id: str
    name: str
    status: str
    training_status: str = ""
    created_at: str = ""
    import_error: str = ""
    size: int = 0

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> "DroaModel":
        return cls(model_id=str(item.get("modelId", "")), name=str(item.get("name", "")),
                   status=str(item.get("status", "")), training_status=str(item.get("trainingStatus", "") or ""),
                   created_at=str(item.get("createdAt", "") or ""),
                   import_error=str(item.get("importErrorMessage", "") or ""),
                   size=int(item.get("fileSizeInBytes", 0) or 0))


# --- the password ---------------------------------------------------------------------------------------------


def read_password(username: str, *, environ: Optional[Mapping[str, str]] = None,
                  prompt: Optional[Callable[[str], str]] = None, interactive: Optional[bool] = None) -> str:
    """The DRoA password: $DR_DROA_PASSWORD when set, else asked for on the terminal (not echoed)."""
    environ = os.environ if environ is None else environ
    if environ.get(PASSWORD_ENV):
        return environ[PASSWORD_ENV]
    if interactive is None:
        interactive = sys.stdin.isatty()
    if not interactive:
        raise DroaError(f"no DRoA password: set {PASSWORD_ENV} or run the command in a terminal to be asked")
    if prompt is None:
        import getpass

        prompt = getpass.getpass
    try:
        password = prompt(f"DRoA password for {username}: ")
    except (EOFError, KeyboardInterrupt):
        raise DroaError("no DRoA password given") from None
    if not password:
        raise DroaError("no DRoA password given")
    return password


# --- env.js ---------------------------------------------------------------------------------------------------


def site_url(url: str) -> str:
    """The web app's address without a trailing slash, query, fragment or `/env.js`; https:// when no scheme."""
    text = (url or "").strip()
    if not text:
        raise DroaError("no DRoA URL: give the web app's address, e.g. https://d1234abcd.cloudfront.net")
    if "://" not in text:
        text = "https://" + text
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DroaError(f"DRoA URL {url!r} is not a web address: expected e.g. https://d1234abcd.cloudfront.net")
    path = parts.path
    for tail in ("/env.js", "/index.html"):
        if path.endswith(tail):
            path = path[: -len(tail)]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path.rstrip("/"), "", ""))


def parse_env_js(text: str, source: str = "env.js") -> DroaConfig:
    """The install's settings from the text of its env.js (JavaScript, not JSON: quotes of either kind, bare
    keys, comments and trailing commas are all accepted). `source` names the file in errors (its URL)."""
    match = re.search(r"window\s*(?:\.\s*EnvironmentConfig|\[\s*(['\"])EnvironmentConfig\1\s*\])\s*=\s*", text)
    if not match:
        looks = "an HTML page" if re.search(r"<(!doctype|html)", text[:2000], re.IGNORECASE) else "no such setting"
        raise DroaError(f"{source} does not set window.EnvironmentConfig (found {looks}): is this the address of "
                        "a DeepRacer on AWS web app?")
    try:
        value, _ = _JsReader(text, match.end()).value()
    except ValueError as error:
        raise DroaError(f"cannot read window.EnvironmentConfig in {source}: {error}") from None
    if not isinstance(value, dict):
        raise DroaError(f"window.EnvironmentConfig in {source} is not an object")
    missing = [key for key in _ENV_KEYS if not isinstance(value.get(key), str) or not value[key].strip()]
    if missing:
        raise DroaError(f"window.EnvironmentConfig in {source} lacks {', '.join(missing)}: is this a DeepRacer on "
                        "AWS site of a current version?")
    values = {name: value[key].strip() for key, name in _ENV_KEYS.items()}
    if not _REGION.fullmatch(values["region"]):
        raise DroaError(f"window.EnvironmentConfig in {source} names region {values['region']!r}, not an AWS region")
    if not values["api_endpoint_url"].startswith(("https://", "http://")):
        raise DroaError(f"window.EnvironmentConfig in {source} has apiEndpointUrl {values['api_endpoint_url']!r}, "
                        "not a web address")
    site = source[: -len("/env.js")] if source.endswith("/env.js") else source
    return DroaConfig(site_url=site, **values)


class _JsReader:
    """Reads one JavaScript literal (object, array, string, number, true/false/null/undefined)."""

    _ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
    _NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
    _NAME = re.compile(r"[A-Za-z_$][\w$]*")

    def __init__(self, text: str, position: int) -> None:
        self.text = text
        self.pos = position

    def value(self) -> tuple[Any, int]:
        self._skip()
        char = self._peek()
        if char == "{":
            return self._object(), self.pos
        if char == "[":
            return self._array(), self.pos
        if char in "'\"`":
            return self._string(), self.pos
        number = self._NUMBER.match(self.text, self.pos)
        if number:
            self.pos = number.end()
            literal = number.group()
            return (float(literal) if any(c in literal for c in ".eE") else int(literal)), self.pos
        name = self._NAME.match(self.text, self.pos)
        if name and name.group() in ("true", "false", "null", "undefined"):
            self.pos = name.end()
            return {"true": True, "false": False}.get(name.group()), self.pos
        raise self._error("expected a value")

    def _object(self) -> dict[str, Any]:
        self.pos += 1
        result: dict[str, Any] = {}
        while True:
            self._skip()
            if self._peek() == "}":
                self.pos += 1
                return result
            if self._peek() in "'\"`":
                key = self._string()
            else:
                name = self._NAME.match(self.text, self.pos) or self._NUMBER.match(self.text, self.pos)
                if not name:
                    raise self._error("expected a property name")
                key, self.pos = name.group(), name.end()
            self._skip()
            if self._peek() != ":":
                raise self._error("expected ':'")
            self.pos += 1
            result[key], _ = self.value()
            self._skip()
            if self._peek() == ",":
                self.pos += 1
            elif self._peek() != "}":
                raise self._error("expected ',' or '}'")

    def _array(self) -> list[Any]:
        self.pos += 1
        result: list[Any] = []
        while True:
            self._skip()
            if self._peek() == "]":
                self.pos += 1
                return result
            item, _ = self.value()
            result.append(item)
            self._skip()
            if self._peek() == ",":
                self.pos += 1
            elif self._peek() != "]":
                raise self._error("expected ',' or ']'")

    def _string(self) -> str:
        quote = self.text[self.pos]
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == quote:
                self.pos += 1
                return "".join(out)
            if char == "\\":
                code = self.text[self.pos + 1: self.pos + 2]
                if code in ("u", "x"):
                    width = 4 if code == "u" else 2
                    digits = self.text[self.pos + 2: self.pos + 2 + width]
                    if not re.fullmatch(r"[0-9a-fA-F]{%d}" % width, digits):
                        raise self._error("bad escape")
                    out.append(chr(int(digits, 16)))
                    self.pos += 2 + width
                    continue
                out.append(self._ESCAPES.get(code, code))
                self.pos += 2
                continue
            if quote == "`" and self.text.startswith("${", self.pos):
                raise self._error("template substitutions are not a literal")
            if char == "\n" and quote != "`":
                raise self._error("unterminated string")
            out.append(char)
            self.pos += 1
        raise self._error("unterminated string")

    def _skip(self) -> None:
        while self.pos < len(self.text):
            if self.text[self.pos].isspace():
                self.pos += 1
            elif self.text.startswith("//", self.pos):
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end + 1
            elif self.text.startswith("/*", self.pos):
                end = self.text.find("*/", self.pos + 2)
                if end < 0:
                    raise self._error("unterminated comment")
                self.pos = end + 2
            else:
                return

    def _peek(self) -> str:
        if self.pos >= len(self.text):
            raise self._error("unexpected end")
        return self.text[self.pos]

    def _error(self, what: str) -> ValueError:
        line = self.text.count("\n", 0, self.pos) + 1
        return ValueError(f"{what} at line {line}")


# --- names and training_params.yaml ---------------------------------------------------------------------------


def droa_model_name(text: str) -> str:
    """A name DRoA accepts (letters, digits, hyphens; at most 64) made from e.g. a model prefix."""
    name = re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9-]", "-", text or "")).strip("-")[:64].rstrip("-")
    return name or "model"


def check_model_name(name: str, description: str = "") -> None:
    """DRoA's own rules for the name and description of an import (its messages), checked before uploading."""
    if not _MODEL_NAME.fullmatch(name or ""):
        raise DroaError(f"model name {name!r}: DRoA model names contain only letters, digits and hyphens, at most 64 "
                        f"(e.g. {droa_model_name(name)!r})")
    if description and not _DESCRIPTION.fullmatch(description):
        raise DroaError("model description: DRoA descriptions contain only letters, digits, spaces and hyphens, at "
                        "most 255")


def droa_training_params(params: Mapping[str, Any], bucket: str, prefix: str) -> tuple[dict[str, Any], list[str]]:
    """`training_params.yaml` as DRoA's import reads it, and one line per change that alters its meaning.

    - bucket/prefix keys point at the upload location (the folder's own still name where it was trained);
    - DRoA names tracks without a direction: `WORLD_NAME` loses `_cw`/`_ccw`, and `TRACK_DIRECTION_CLOCKWISE`
      becomes a YAML boolean (DRoA tests `=== true`; a string "true" would read as counter-clockwise). A bare
      route drives counter-clockwise (every simulator route with both variants does); `REVERSE_DIR` flips that
      and is folded into the direction;
    - object avoidance: `NUMBER_OF_OBSTACLES` an integer, `RANDOMIZE_OBSTACLE_LOCATIONS` a boolean (DRoA compares
      them strictly).
    """
    out = dict(params)
    notes: list[str] = []

    def put(key: str, value: Any, always: bool = True) -> None:
        if key in out or always:
            out[key] = [value] if isinstance(out.get(key), list) else value

    put("SAGEMAKER_SHARED_S3_BUCKET", bucket)
    put("SAGEMAKER_SHARED_S3_PREFIX", prefix)
    put("METRICS_S3_BUCKET", bucket)
    put("METRICS_S3_OBJECT_KEY", f"{prefix}/metrics/TrainingMetrics.json")
    put("MODEL_METADATA_FILE_S3_KEY", f"{prefix}/model/model_metadata.json")
    put("REWARD_FILE_S3_KEY", f"{prefix}/reward_function.py")
    put("SIMTRACE_S3_BUCKET", bucket, always=False)
    put("SIMTRACE_S3_PREFIX", prefix, always=False)

    world = out.get("WORLD_NAME")
    if isinstance(world, list) and len(world) == 1:
        world = world[0]
    if not isinstance(world, str) or not world.strip():
        raise DroaError(f"{TRAINING_PARAMS} has no WORLD_NAME: DRoA's import needs the track")
    base, suffix = split_direction(world.strip())
    declared = out.get("TRACK_DIRECTION_CLOCKWISE")
    if suffix is not None:
        clockwise = suffix == "cw"
        why = f"WORLD_NAME {world} -> {base}: DRoA names tracks without _cw/_ccw"
        if declared is not None:
            why += " (its TRACK_DIRECTION_CLOCKWISE was ignored: the name already gives the direction)"
    elif declared is not None:
        clockwise = _flag(declared, "TRACK_DIRECTION_CLOCKWISE")
        why = ""
    else:
        clockwise = False
        why = f"{base} without a direction drives its route counter-clockwise"
    if _flag(out.get("REVERSE_DIR", False), "REVERSE_DIR"):
        clockwise = not clockwise
        out["REVERSE_DIR"] = "False"
        why = (why + "; " if why else "") + "REVERSE_DIR folded into the direction"
    out["WORLD_NAME"] = base
    out["TRACK_DIRECTION_CLOCKWISE"] = clockwise
    if why or not isinstance(declared, bool):
        because = why or "as a YAML boolean, which DRoA reads"
        notes.append(f"{TRAINING_PARAMS}: TRACK_DIRECTION_CLOCKWISE: {'true' if clockwise else 'false'} ({because})")

    if isinstance(out.get("NUMBER_OF_OBSTACLES"), str) and out["NUMBER_OF_OBSTACLES"].strip().isdigit():
        out["NUMBER_OF_OBSTACLES"] = int(out["NUMBER_OF_OBSTACLES"])
    if isinstance(out.get("RANDOMIZE_OBSTACLE_LOCATIONS"), str):
        out["RANDOMIZE_OBSTACLE_LOCATIONS"] = _flag(out["RANDOMIZE_OBSTACLE_LOCATIONS"], "RANDOMIZE_OBSTACLE_LOCATIONS")
    return out, notes


def _flag(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise DroaError(f"{TRAINING_PARAMS}: {key} is {value!r}; expected true or false")


# --- the client -----------------------------------------------------------------------------------------------


class DroaClient:
    """One user's session with one DRoA install. Logs in on first use; `password` is dropped after the login.

    `password` may be a function returning it (e.g. `lambda: read_password(user)`): it is then asked for only
    once env.js has been read, so a wrong address fails before anyone types a password.

    `client_factory(service, region, credentials)` makes the boto3 clients (Cognito, and S3 for the upload);
    tests point it at stand-in servers. `now` and `sleep` serve credential expiry and retries.
    """

    def __init__(self, url: str, username: str, password: Union[str, Callable[[], str]], *,
                 client_factory: Optional[ClientFactory] = None, timeout: float = 30.0,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not username:
            raise DroaError("no DRoA username: give the name or e-mail address you log in to the web app with")
        if not password:
            raise DroaError("no DRoA password given")
        self.url = site_url(url)
        self.username = username
        self._password: Union[str, Callable[[], str], None] = password
        self._factory = client_factory or _default_client
        self._timeout = timeout
        self._now = now
        self._sleep = sleep
        self._config: Optional[DroaConfig] = None
        self._credentials: Optional[TemporaryCredentials] = None
        self._refresh_token: Optional[str] = None
        self._clients: dict[tuple[str, str], BaseClient] = {}

    def __repr__(self) -> str:
        return f"DroaClient(url={self.url!r}, username={self.username!r})"

    # -- discovery and login -----------------------------------------------------------------------------------

    @property
    def config(self) -> DroaConfig:
        """The install's settings, read from its env.js on first use."""
        if self._config is None:
            self._config = self._discover()
        return self._config

    def login(self) -> None:
        """Cognito login and identity-pool credentials; does nothing once logged in."""
        if self._credentials is not None:
            return
        config = self.config
        given, self._password = self._password, None
        if given is None:
            raise DroaError(f"the DRoA login of {self.username!r} already failed; run the command again")
        password = given() if callable(given) else given
        if not password:
            raise DroaError("no DRoA password given")
        doing = f"logging in to {self.url} as {self.username!r}"
        try:
            with _quiet_sdk_logs():
                response = self._client("cognito-idp").initiate_auth(
                    AuthFlow="USER_PASSWORD_AUTH", ClientId=config.user_pool_client_id,
                    AuthParameters={"USERNAME": self.username, "PASSWORD": password})
        except Exception as error:  # botocore's errors become one line; the rest re-raise
            mapped = self._cognito_error(error, doing)
            if mapped is None:
                raise
            raise DroaError(_scrub(str(mapped), password)) from None
        finally:
            del password, given
        challenge = response.get("ChallengeName")
        if challenge == "NEW_PASSWORD_REQUIRED":
            raise DroaError(f"DRoA wants a new password for {self.username!r} (first login with a temporary "
                            f"password): log in once in the web app at {self.url}, set one, then run this again")
        if challenge:
            raise DroaError(f"DRoA asks {self.username!r} for {challenge}, which this tool does not answer: log in "
                            f"at {self.url} in a browser, or use a DRoA user without it")
        result = response.get("AuthenticationResult") or {}
        if not result.get("IdToken"):
            raise DroaError(f"DRoA's Cognito answered the login of {self.username!r} without an ID token")
        self._refresh_token = result.get("RefreshToken")
        self._credentials = self._identity_credentials(result["IdToken"])

    # -- the API -----------------------------------------------------------------------------------------------

    def list_models(self) -> list[DroaModel]:
        """The user's models, in DRoA's order."""
        models: list[DroaModel] = []
        token: Optional[str] = None
        seen: set[str] = set()
        while True:
            page = self._call("GET", "/models", query={"token": token} if token else None, doing="listing models")
            models.extend(DroaModel.from_api(item) for item in page.get("models") or [])
            token = page.get("token")
            if not token or token in seen:
                return models
            seen.add(token)

    def get_model(self, model_id: str) -> DroaModel:
        body = self._call("GET", f"/models/{urllib.parse.quote(model_id, safe='')}", doing=f"reading model {model_id}")
        if not isinstance(body.get("model"), Mapping):
            raise DroaError(f"DRoA answered GET /models/{model_id} without a model")
        return DroaModel.from_api(body["model"])

    def import_model(self, source: Source, model_name: str, description: str = "", *,
                     report: Optional[Report] = None) -> str:
        """Uploads an exported model folder and asks DRoA to import it; returns the new model's id.

        Before uploading anything: DRoA's name rules, the folder (required files, the checkpoint
        `.coach_checkpoint` names, 1 GiB), DRoA's import rules (`check_droa_rules`: every finding at once, as a
        `DroaRulesError`), then one signed API call (`check_api`), so that a host DRoA's firewall refuses learns it
        before the upload. `training_params.yaml` is uploaded as DRoA reads it (`droa_training_params`); the folder
        itself is not changed. The import then runs in DRoA: see `wait_for_import`.
        """
        report = report or (lambda line: None)
        check_model_name(model_name, description)
        files, where = _collect(source)
        size = _preflight(files, where)
        params = _read_params(files[TRAINING_PARAMS], where)
        for warning in check_droa_rules(files, params, where):
            report(str(warning))
        config = self.config
        self.check_api()
        prefix = f"{UPLOAD_PREFIX}/{uuid.uuid4()}"
        params, notes = droa_training_params(params, config.upload_bucket, prefix)
        for note in notes:
            report(note)
        import yaml

        params_bytes = yaml.safe_dump(params, default_flow_style=False, sort_keys=False, explicit_start=True,
                                      allow_unicode=True).encode()
        report(f"uploading {len(files)} files ({human_size(size)}) to s3://{config.upload_bucket}/{prefix}/")
        for rel in sorted(files):
            self._upload(rel, files[rel] if rel != TRAINING_PARAMS else params_bytes, f"{prefix}/{rel}")
        body = {"s3Bucket": config.upload_bucket, "s3Path": prefix, "modelName": model_name}
        if description:
            body["modelDescription"] = description
        answer = self._call("POST", "/importmodel", body=body, doing=f"the import of {model_name}")
        model_id = answer.get("modelId")
        if not isinstance(model_id, str) or not model_id:
            raise DroaError(f"DRoA accepted the import of {model_name} but answered without a modelId")
        report(f"DRoA is importing {model_name} as model {model_id}")
        return model_id

    def check_api(self) -> None:
        """One signed request to DRoA's API (its first page of models), as the import signs its own: refused by
        AWS WAF (hosting-provider and anonymous IP lists) or by anything else, it fails before an upload."""
        self._call("GET", "/models", doing="checking DRoA's API before uploading")

    def wait_for_import(self, model_id: str, timeout: float = 1800.0, interval: float = 15.0, *,
                        clock: Callable[[], float] = time.monotonic, sleep: Optional[Callable[[float], None]] = None,
                        report: Optional[Report] = None) -> DroaModel:
        """Polls the model until DRoA has validated it: returns it READY, or raises with DRoA's reason."""
        sleep = sleep or self._sleep
        deadline = clock() + timeout
        last = ""
        while True:
            model = self.get_model(model_id)
            if model.status != last and report is not None:
                report(f"model {model.name or model_id}: {model.status}")
            last = model.status
            if model.status == READY:
                return model
            if model.status == ERROR:
                reason = model.import_error or "no reason given (see the model's page in the web app)"
                raise DroaError(f"DRoA could not import model {model.name or model_id} ({model_id}): {reason}")
            if model.status == "DELETING":
                raise DroaError(f"model {model.name or model_id} ({model_id}) is being deleted in DRoA")
            remaining = deadline - clock()
            if remaining <= 0:
                raise DroaError(f"model {model.name or model_id} ({model_id}) is still {model.status} after "
                                f"{timeout:.0f} s; see its page at {self.url}")
            sleep(min(interval, remaining))

    # -- internals ---------------------------------------------------------------------------------------------

    def _client(self, service: str, credentials: Optional[TemporaryCredentials] = None) -> "BaseClient":
        """One boto3 client per service (and per set of credentials: renewed ones get a new client)."""
        key = (service, credentials.access_key if credentials else "")
        if key not in self._clients:
            if credentials is not None:  # the old credentials' client is of no further use
                self._clients = {k: v for k, v in self._clients.items() if k[0] != service}
            self._clients[key] = self._factory(service, self.config.region, credentials)
        return self._clients[key]

    def _discover(self) -> DroaConfig:
        address = f"{self.url}/env.js"
        request = urllib.request.Request(address, headers={"User-Agent": _USER_AGENT, "Accept": "*/*"})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                text = response.read(_ENV_JS_LIMIT).decode("utf-8", errors="replace")
        except urllib.error.HTTPError as error:
            raise DroaError(f"{address} answered HTTP {error.code}: is {self.url} the address of a DeepRacer on "
                            "AWS web app?") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", None) or error
            raise DroaError(f"cannot reach DRoA at {self.url} ({reason}): check the address and this host's "
                            "outbound network") from None
        return parse_env_js(text, address)

    def _identity_credentials(self, id_token: str) -> TemporaryCredentials:
        config = self.config
        logins = {config.login_provider: id_token}
        try:
            with _quiet_sdk_logs():
                identity = self._client("cognito-identity")
                identity_id = identity.get_id(IdentityPoolId=config.identity_pool_id, Logins=logins)["IdentityId"]
                answer = identity.get_credentials_for_identity(IdentityId=identity_id, Logins=logins)
        except Exception as error:
            mapped = self._cognito_error(error, f"getting AWS credentials for {self.username!r}")
            if mapped is None:
                raise
            raise mapped from None
        creds = answer.get("Credentials") or {}
        if not all(creds.get(k) for k in ("AccessKeyId", "SecretKey", "SessionToken")):
            raise DroaError(f"DRoA's identity pool answered without credentials for {self.username!r}")
        expiration = creds.get("Expiration")
        if isinstance(expiration, (int, float)):
            expiration = datetime.fromtimestamp(expiration, timezone.utc)
        if isinstance(expiration, datetime) and expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=timezone.utc)
        return TemporaryCredentials(creds["AccessKeyId"], creds["SecretKey"], creds["SessionToken"],
                                    expiration if isinstance(expiration, datetime) else None)

    def _fresh_credentials(self) -> TemporaryCredentials:
        self.login()
        assert self._credentials is not None
        expiration = self._credentials.expiration
        if expiration is not None and expiration - self._now() < _RENEW_BEFORE:
            self._renew()
        return self._credentials

    def _renew(self) -> None:
        if not self._refresh_token:
            raise DroaError("the DRoA session expired and cannot be renewed: run the command again")
        config = self.config
        try:
            with _quiet_sdk_logs():
                response = self._client("cognito-idp").initiate_auth(
                    AuthFlow="REFRESH_TOKEN_AUTH", ClientId=config.user_pool_client_id,
                    AuthParameters={"REFRESH_TOKEN": self._refresh_token})
        except Exception as error:
            mapped = self._cognito_error(error, "renewing the DRoA session")
            if mapped is None:
                raise
            raise DroaError(f"the DRoA session expired and could not be renewed ({mapped}): run the command "
                            "again") from None
        id_token = (response.get("AuthenticationResult") or {}).get("IdToken")
        if not id_token:
            raise DroaError("the DRoA session expired and could not be renewed: run the command again")
        self._credentials = self._identity_credentials(id_token)

    def _call(self, method: str, path: str, *, body: Optional[Mapping[str, Any]] = None,
              query: Optional[Mapping[str, str]] = None, doing: str) -> dict[str, Any]:
        """One signed API request; JSON in, JSON out. Idempotent requests are retried on throttling and 5xx."""
        attempts = 3 if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            status, headers, raw = self._send(method, path, body, query, doing)
            if 200 <= status < 300:
                try:
                    answer = json.loads(raw or b"{}")
                except ValueError:
                    raise DroaError(f"DRoA answered {method} {path} with something other than JSON") from None
                if not isinstance(answer, dict):
                    raise DroaError(f"DRoA answered {method} {path} with unexpected JSON")
                return answer
            if attempt < attempts and (status == 429 or status >= 500):
                self._sleep(2.0 * attempt)
                continue
            raise self._api_error(method, path, status, headers, raw, doing)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, method: str, path: str, body: Optional[Mapping[str, Any]], query: Optional[Mapping[str, str]],
              doing: str) -> tuple[int, Mapping[str, str], bytes]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        creds = self._fresh_credentials()
        config = self.config
        url = config.api_endpoint_url.rstrip("/") + path
        if query:
            url += "?" + "&".join(f"{urllib.parse.quote(str(k), safe='-_.~')}={urllib.parse.quote(str(v), safe='-_.~')}"
                                  for k, v in sorted(query.items()))
        data = json.dumps(body).encode() if body is not None else b""
        origin = urllib.parse.urlunsplit(urllib.parse.urlsplit(self.url)[:2] + ("", "", ""))
        headers = {"Accept": "application/json", "Origin": origin, "Referer": self.url + "/"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        signed = AWSRequest(method=method, url=url, data=data, headers=headers)
        with _quiet_sdk_logs():
            SigV4Auth(Credentials(creds.access_key, creds.secret_key, creds.session_token), "execute-api",
                      config.region).add_auth(signed)
        sent = dict(signed.headers.items())
        sent["User-Agent"] = _USER_AGENT  # not signed (SigV4 leaves it out), so set after signing
        request = urllib.request.Request(url, data=data if body is not None else None, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()  # type: ignore[return-value]  # read with .get() only
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", None) or error
            raise DroaError(f"cannot reach DRoA's API at {config.api_endpoint_url} while {doing} ({reason}): check "
                            "this host's outbound network") from None

    def _api_error(self, method: str, path: str, status: int, headers: Mapping[str, str], raw: bytes,
                   doing: str) -> DroaError:
        message, kind = _error_message(headers, raw)
        said = message or f"HTTP {status}"
        if status == 400:
            return DroaError(f"DRoA rejected {doing}: {said}")
        if status == 403:
            lowered = message.lower()
            if "signature expired" in lowered:
                return DroaError(f"DRoA found the request too old while {doing} ({said}): check this host's clock "
                                 "(timedatectl)")
            if "expired" in lowered:
                return DroaError(f"the DRoA session expired while {doing}: run the command again")
            if "not authorized to perform" in lowered or kind == "NotAuthorizedError":
                return DroaError(f"DRoA does not let {self.username!r} do {method} {path} while {doing} ({said}): "
                                 "ask a DRoA admin to put the user in a DRoA group (dr-racers or above)")
            if "missing authentication token" in lowered:
                return DroaError(f"DRoA's API has no {method} {path} ({said}): is the apiEndpointUrl in "
                                 f"{self.url}/env.js current?")
            if "signature" in lowered:
                return DroaError(f"DRoA did not accept the request signature while {doing} ({said}): is a proxy "
                                 "changing requests on the way?")
            if message in ("", "Forbidden") or kind == "ForbiddenException":
                return DroaError(f"{WAF_REFUSAL} ({method} {path} answered HTTP 403 {said} while {doing})")
            return DroaError(f"DRoA refused {method} {path} while {doing} ({said})")
        if status == 404:
            return DroaError(f"DRoA found nothing for {method} {path} while {doing}: {said}")
        if status == 429:
            return DroaError(f"DRoA is throttling requests ({said}) while {doing}; try again in a minute")
        if status >= 500 and path == "/importmodel":
            return DroaError(f"DRoA failed {doing} (HTTP {status}: {said}); it fails this way when a file it reads "
                             f"is missing or unreadable ({', '.join(REQUIRED_FILES[:4])})")
        return DroaError(f"DRoA answered HTTP {status} while {doing}: {said}")

    def _cognito_error(self, error: BaseException, doing: str) -> Optional[DroaError]:
        from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError

        region = self.config.region
        if isinstance(error, ClientError):
            err = error.response.get("Error", {})
            code = str(err.get("Code") or "")
            message = str(err.get("Message") or code).rstrip(".")
            operation = getattr(error, "operation_name", "") or ""
            if code == "NotAuthorizedException" and operation == "InitiateAuth":
                return DroaError(f"DRoA refused the login of {self.username!r} at {self.url}: {message} (check the "
                                 f"username and password, and {PASSWORD_ENV} if it is set)")
            if code == "UserNotFoundException":
                return DroaError(f"DRoA at {self.url} has no user {self.username!r}: use the username or e-mail "
                                 "address you log in to the web app with")
            if code == "PasswordResetRequiredException":
                return DroaError(f"DRoA wants {self.username!r} to reset the password: do that in the web app at "
                                 f"{self.url}, then run this again")
            if code == "UserNotConfirmedException":
                return DroaError(f"DRoA user {self.username!r} is not confirmed yet: finish signing up in the web "
                                 f"app at {self.url}")
            if code == "InvalidParameterException" and "USER_PASSWORD_AUTH" in message:
                return DroaError(f"this DRoA's app client does not allow password logins (USER_PASSWORD_AUTH): "
                                 f"{message}")
            if code in ("NotAuthorizedException", "InvalidIdentityPoolConfigurationException") \
                    and operation == "GetCredentialsForIdentity":
                return DroaError(f"DRoA gives {self.username!r} no AWS role ({message}): a DRoA admin must put the "
                                 "user in a DRoA group (dr-racers, dr-race-facilitators or dr-admins)")
            if code == "NotAuthorizedException":
                return DroaError(f"DRoA's identity pool refused the login of {self.username!r} ({message}): the "
                                 f"identityPoolId and userPoolId in {self.url}/env.js may not belong together")
            if code == "ResourceNotFoundException":
                return DroaError(f"DRoA's Cognito in {region} does not know a resource {self.url}/env.js names "
                                 f"({message}): is env.js current?")
            if code in ("TooManyRequestsException", "LimitExceededException", "TooManyFailedAttemptsException"):
                return DroaError(f"Cognito refused {doing}: too many attempts ({message}); wait a few minutes")
            return DroaError(f"Cognito refused {doing}: {code}: {message}")
        if isinstance(error, (ConnectionError, ReadTimeoutError)):
            return DroaError(f"cannot reach Cognito in {region} while {doing}: check this host's outbound network")
        if isinstance(error, BotoCoreError):
            return DroaError(f"Cognito request failed while {doing}: {error}")
        return None

    def _upload(self, rel: str, content: Union[Path, bytes], key: str) -> None:
        config = self.config
        creds = self._fresh_credentials()
        digest = hashlib.md5(usedforsecurity=False)
        try:
            if isinstance(content, bytes):
                digest.update(content)
            else:
                with open(content, "rb") as handle:
                    for chunk in iter(lambda: handle.read(1024 * 1024), b""):
                        digest.update(chunk)
        except OSError as error:
            # `content` is a Path here: bytes raise no OSError.
            raise DroaError(f"cannot read {content}: {error.strerror or error}") from None  # type: ignore[str-bytes-safe]
        checksum = base64.b64encode(digest.digest()).decode()
        kind = _content_type(rel)
        try:
            with _quiet_sdk_logs():
                s3 = self._client("s3", creds)
                if isinstance(content, bytes):
                    s3.put_object(Bucket=config.upload_bucket, Key=key, Body=content, ContentMD5=checksum,
                                  ContentType=kind)
                else:
                    with open(content, "rb") as handle:
                        s3.put_object(Bucket=config.upload_bucket, Key=key, Body=handle, ContentMD5=checksum,
                                      ContentType=kind)
        except Exception as error:  # SDK and file errors become one line; the rest re-raise
            if _is_sdk_error(error):  # before OSError: some of botocore's timeouts are OSErrors too
                raise self._s3_error(error, rel, key) from None
            if isinstance(error, OSError):
                # `content` is a Path here: bytes raise no OSError.
                raise DroaError(f"cannot read {content}: {error.strerror or error}") from None  # type: ignore[str-bytes-safe]
            raise

    def _s3_error(self, error: BaseException, rel: str, key: str) -> DroaError:
        from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

        bucket = self.config.upload_bucket
        where = f"s3://{bucket}/{key}"
        if isinstance(error, ClientError):
            err = error.response.get("Error", {})
            code = str(err.get("Code") or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "")
            message = str(err.get("Message") or code)
            if code in ("AccessDenied", "403"):
                return DroaError(f"DRoA's upload bucket refused {rel} ({code}): {self.username!r} may not write "
                                 f"{where}; a DRoA admin must put the user in a DRoA group")
            if code in ("ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired"):
                return DroaError(f"the DRoA session expired while uploading {rel}: run the command again")
            if code in ("BadDigest", "InvalidDigest"):
                return DroaError(f"{rel} arrived different from the file ({code}): it changed while being uploaded, "
                                 "or the network altered it; run the command again")
            if code == "NoSuchBucket":
                return DroaError(f"{self.url}/env.js names upload bucket {bucket}, which does not exist")
            return DroaError(f"S3 refused the upload of {rel} to {where}: {code}: {message}")
        if isinstance(error, (ConnectionError, ReadTimeoutError)):
            return DroaError(f"cannot reach S3 in {self.config.region} while uploading {rel}: check this host's "
                             "outbound network")
        return DroaError(f"the upload of {rel} to {where} failed: {error}")


# --- helpers --------------------------------------------------------------------------------------------------


def _default_client(service: str, region: str, credentials: Optional[TemporaryCredentials]) -> "BaseClient":
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    options: dict[str, Any] = {"region_name": region, "connect_timeout": 10, "read_timeout": 120,
                               "retries": {"total_max_attempts": 4, "mode": "standard"}}
    if "ignore_configured_endpoint_urls" in Config.OPTION_DEFAULTS:
        options["ignore_configured_endpoint_urls"] = True  # AWS_ENDPOINT_URL may point at this host's MinIO
    if credentials is None:
        options["signature_version"] = UNSIGNED  # Cognito's login calls are public; no host credentials leak in
        session = boto3.session.Session(region_name=region)
    else:
        session = boto3.session.Session(aws_access_key_id=credentials.access_key,
                                        aws_secret_access_key=credentials.secret_key,
                                        aws_session_token=credentials.session_token, region_name=region)
    return session.client(service, config=Config(**options))


@contextlib.contextmanager
def _quiet_sdk_logs() -> Iterator[None]:
    """Hold back the SDK's debug logs, which print request bodies (the password) and answers (tokens, keys)."""
    loggers = [logging.getLogger(name) for name in _SDK_LOGGERS]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, saved):
            logger.setLevel(level)


def _scrub(text: str, secret: Optional[str]) -> str:
    return text.replace(secret, "***") if secret else text


def _is_sdk_error(error: BaseException) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(error, (BotoCoreError, ClientError))


def _error_message(headers: Mapping[str, str], raw: bytes) -> tuple[str, str]:
    """DRoA's message and error type from an error answer (Smithy: {"message"}, x-amzn-ErrorType; API Gateway:
    {"message"} or {"Message"}; its request validator: {"errorMessage"})."""
    kind = str(headers.get("x-amzn-ErrorType") or headers.get("X-Amzn-ErrorType") or "").split(":")[0]
    text = raw.decode("utf-8", errors="replace")
    message = ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        message = str(data.get("message") or data.get("Message") or data.get("errorMessage") or "")
        fields = data.get("fieldList")
        if isinstance(fields, list) and fields:
            details = "; ".join(f"{f.get('path', '')}: {f.get('message', '')}" for f in fields if isinstance(f, dict))
            message = f"{message} ({details})" if message else details
    elif text.strip() and not text.lstrip().startswith("<"):
        message = text
    message = " ".join(message.split())
    if len(message) > _MESSAGE_LIMIT:
        message = message[: _MESSAGE_LIMIT - 3] + "..."
    return message, kind


def _collect(source: Source) -> tuple[dict[str, Path], str]:
    """{path inside the model folder: local file}, and how to name the source in messages."""
    if isinstance(source, Mapping):
        files: dict[str, Path] = {}
        for rel, path in source.items():
            clean = PurePosixPath(str(rel).replace("\\", "/"))
            if clean.is_absolute() or ".." in clean.parts or not clean.parts or str(clean) == ".":
                raise DroaError(f"{rel!r} is not a path inside a model folder")
            files[str(clean)] = Path(path)
        where = "the model files"
    else:
        root = Path(source)
        if not root.is_dir():
            raise DroaError(f"no model folder at {root}")
        files = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}
        where = str(root)
    if not files:
        raise DroaError(f"{where}: no files to import")
    return files, where


def _preflight(files: Mapping[str, Path], where: str) -> int:
    """What DRoA would refuse late, refused before uploading; returns the total size."""
    missing = [rel for rel in REQUIRED_FILES if rel not in files]
    if "model/.coach_checkpoint" in files:
        try:
            name = _coach_checkpoint(files["model/.coach_checkpoint"].read_text(errors="replace"))
        except OSError as error:
            raise DroaError(f"cannot read model/.coach_checkpoint in {where}: {error.strerror or error}") from None
        if not name:
            missing.append("a checkpoint name in model/.coach_checkpoint")
        else:
            for tail in (".index", ".meta"):
                if f"model/{name}{tail}" not in files:
                    missing.append(f"model/{name}{tail}")
            if not any(rel.startswith(f"model/{name}.data-") for rel in files):
                missing.append(f"model/{name}.data-00000-of-00001")
    if missing:
        raise DroaError(f"{where} lacks {', '.join(missing)}: DRoA's import needs model_metadata.json, "
                        "reward_function.py, training_params.yaml and ip/hyperparameters.json, and model/ with "
                        "model_metadata.json, .coach_checkpoint and the checkpoint it names (export the model first)")
    try:
        size = sum(path.stat().st_size for path in files.values())
    except OSError as error:
        raise DroaError(f"cannot read {getattr(error, 'filename', '') or where}: {error.strerror or error}") from None
    if size > MAX_IMPORT_BYTES:
        raise DroaError(f"{where} holds {human_size(size)}; DRoA imports at most {human_size(MAX_IMPORT_BYTES)} "
                        "(export one checkpoint)")
    return size


def _coach_checkpoint(text: str) -> str:
    """The checkpoint `.coach_checkpoint` names: a bare name, or TensorFlow's `model_checkpoint_path: "..."`."""
    match = re.search(r'model_checkpoint_path:\s*"([^"]+)"', text)
    name = match.group(1) if match else (text.strip().splitlines() or [""])[0].strip()
    return name.rsplit("/", 1)[-1]


def _read_params(path: Path, where: str) -> dict[str, Any]:
    import yaml

    try:
        params = yaml.safe_load(path.read_text())
    except OSError as error:
        raise DroaError(f"cannot read {TRAINING_PARAMS} in {where}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise DroaError(f"{TRAINING_PARAMS} in {where} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(params, dict):
        raise DroaError(f"{TRAINING_PARAMS} in {where} is not a mapping of keys to values")
    return params


def check_droa_rules(files: Mapping[str, Path], params: Mapping[str, Any], where: str) -> list[Problem]:
    """DRoA's import rules (session.checks.droa_rules) on the folder's files, training_params.yaml as it will be
    uploaded; raises `DroaRulesError` with every error at once, returns the warnings."""
    converted, _ = droa_training_params(params, "", "")  # the location keys do not matter to the rules
    metadata = _read_json(files, droa_rules.METADATA_FILE, where)
    hyperparameters = _read_json(files, droa_rules.HYPERPARAMETERS_FILE, where)
    try:
        reward = files[droa_rules.REWARD_FILE].read_text(encoding="utf-8")
    except OSError as error:
        raise DroaError(f"cannot read {droa_rules.REWARD_FILE} in {where}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise DroaError(f"{droa_rules.REWARD_FILE} in {where} is not UTF-8 text") from None
    problems = droa_rules.check_import(reward, converted, metadata, hyperparameters)
    errors = [problem for problem in problems if problem.is_error]
    if errors:
        raise DroaRulesError(where, errors)
    return [problem for problem in problems if not problem.is_error]


def _read_json(files: Mapping[str, Path], rel: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(files[rel].read_text(encoding="utf-8"))
    except OSError as error:
        raise DroaError(f"cannot read {rel} in {where}: {error.strerror or error}") from None
    except ValueError as error:
        raise DroaError(f"{rel} in {where} is not valid JSON ({error}); DRoA's import fails on it") from None
    if not isinstance(data, dict):
        raise DroaError(f"{rel} in {where} is not a JSON object; DRoA's import fails on it")
    return data


def _content_type(rel: str) -> str:
    suffix = PurePosixPath(rel).suffix.lower()
    return {".json": "application/json", ".yaml": "application/x-yaml", ".yml": "application/x-yaml",
            ".py": "text/x-python", ".csv": "text/csv"}.get(suffix, "application/octet-stream")
