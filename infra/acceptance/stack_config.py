"""The fresh stack's name and config (pure): the cloud's stack file, the user's overrides, what the test insists on."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import yaml

from infra.settings import PROJECT, AwsSettings, AzureSettings, SettingsError, cloud_of, load_aws, load_azure

STACK_PREFIX = "acc"
# pulumi-aws refuses a bucket_prefix longer than 37 characters; the program's is `deepracer-<stack>-`.
BUCKET_PREFIX_MAX = 37
# The test checks that the models outlive `destroy`: the stack must keep its storage.
KEEP_STORAGE = {"aws": f"{PROJECT}:keepBucketOnDestroy", "azure": f"{PROJECT}:keepStorageOnDestroy"}
POWER_OFF = f"{PROJECT}:powerOffAfterMaxMinutes"
_TRUE = ("true", "yes", "1")


def stack_name(cloud: str, now: datetime) -> str:
    """A stack beside the user's own `aws`/`azure`, named for the cloud (the program builds it) and the UTC time."""
    name = f"{STACK_PREFIX}-{cloud}-{now.astimezone(timezone.utc):%Y%m%d-%H%M%S}"
    assert cloud_of(name) == cloud and len(f"deepracer-{name}-") <= BUCKET_PREFIX_MAX, name
    return name


def template_path(repo_root: Path, cloud: str) -> Path:
    return repo_root / f"Pulumi.{cloud}.yaml"


def read_template(path: Path) -> dict[str, Any]:
    """The `config:` of a stack file, as YAML gives it (nested for structured values such as aws:defaultTags)."""
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise SettingsError(f"{path}: cannot be read ({error.strerror or error})") from None
    except yaml.YAMLError as error:
        raise SettingsError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise SettingsError(f"{path}: expected a `config:` mapping of stack settings")
    return config


def flatten(config: Mapping[str, Any]) -> dict[str, str]:
    """Config as Pulumi's path keys and string values: {"aws:defaultTags": {"tags": {"stack": "aws"}}} becomes
    {"aws:defaultTags.tags.stack": "aws"}, set with `path=True`."""
    flat: dict[str, str] = {}

    def visit(key: str, value: Any) -> None:
        if isinstance(value, dict):
            for name, item in value.items():
                visit(f"{key}.{name}", item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                visit(f"{key}[{index}]", item)
        else:
            flat[key] = value if isinstance(value, str) else json.dumps(value)

    for key, value in config.items():
        visit(str(key), value)
    return flat


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    """`--config KEY=VALUE` items; a KEY without a namespace is the project's (`workers=1`)."""
    overrides: dict[str, str] = {}
    for item in items:
        key, equals, value = item.partition("=")
        key = key.strip()
        if not equals or not key:
            raise SettingsError(f"--config {item!r}: expected KEY=VALUE, e.g. --config workers=1")
        overrides[key if ":" in key else f"{PROJECT}:{key}"] = value
    return overrides


def stack_config(cloud: str, stack: str, template: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    """The fresh stack's config: the cloud's stack file, then the overrides, then what the test needs."""
    config = flatten(template)
    config.update(overrides)
    keep = KEEP_STORAGE[cloud]
    if config.get(keep, "true").strip().lower() not in _TRUE:
        raise SettingsError(f"{keep}: the acceptance test checks that the models outlive `destroy`, so it keeps "
                            f"the storage; got {config[keep]!r}")
    config[keep] = "true"
    # The 15-minute time limit must not power the host off: evaluate, car-package and stop come after it.
    config[POWER_OFF] = "false"
    if cloud == "aws":
        # The bill and the console tell the test's resources from the user's own stack's.
        config["aws:defaultTags.tags.stack"] = stack
    return config


Settings = Union[AwsSettings, AzureSettings]


def validate(cloud: str, config: Mapping[str, str]) -> Settings:
    """The program's own validation of the config, before anything is created; errors name the stack file the
    values come from (`Pulumi.<cloud>.yaml`, or --config)."""
    load = load_aws if cloud == "aws" else load_azure
    return load(cloud, config.get)
