"""Stack settings: the one place that reads Pulumi config, validates it and hands down typed values.

Every setting has its default here and, written out, in the stack file (Pulumi.<stack>.yaml). A bad value
stops the program with one line naming the file, the key and what is expected.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Callable, Literal, Optional, TypeVar, Union

from infra.pricing import AWS_CPU_INSTANCE_TYPES, AZURE_CPU_VM_SIZES, azure_vcpus
from session.core.defaults import MAX_WORKERS  # one maximum for the stack and the host's DR_WORKERS

PROJECT = "deepracer-cloud"

DEFAULT_SIMAPP_IMAGE = "awsdeepracercommunity/deepracer-simapp"
# The tag DeepRacer-for-Cloud pins (defaults/dependencies.json); -gpu because the host has a T4.
DEFAULT_SIMAPP_VERSION = "6.0.4-gpu"
DEFAULT_AWS_INSTANCE_TYPE = "g4dn.2xlarge"
# The DLAMI's root snapshot, the simulator image (~25 GB unpacked), checkpoints and logs, with headroom.
DEFAULT_ROOT_VOLUME_GB = 150
MIN_ROOT_VOLUME_GB = 100
DEFAULT_READY_TIMEOUT_MINUTES = 45
# Idle auto-stop (session/lifecycle/idle.py): minutes without training or evaluation before the host powers off.
DEFAULT_IDLE_STOP_MINUTES = 30
MAX_IDLE_STOP_MINUTES = 1440
MAX_MONTHLY_BUDGET_USD = 1_000_000
MAX_ALERT_EMAILS = 10  # e-mail subscribers of one AWS Budgets notification

CLOUDS = ("aws", "azure")

# Simulation nodes (issue 12): CPU machines that join the host's Docker Swarm and run only simulation workers.
DEFAULT_AWS_SIM_NODE_TYPE = "c7i.2xlarge"  # 8 vCPU, 16 GiB: 4 workers, no GPU
DEFAULT_AZURE_SIM_NODE_SIZE = "Standard_F8s_v2"  # 8 vCPU, 16 GiB: 4 workers, no GPU
MAX_SIM_NODES = 8

Market = Literal["on-demand", "spot"]
Priority = Literal["regular", "spot"]

DEFAULT_AZURE_LOCATION = "eastus"
# The NC T4 v3 family replaced the retired NC6/NCv2/NCv3: 8 vCPU, 56 GiB, one T4 (16 GB), 352 GiB temp disk on
# /mnt; about USD 0.75/h pay-as-you-go in East US (infra/pricing.py), the same GPU and price as g4dn.2xlarge.
DEFAULT_AZURE_VM_SIZE = "Standard_NC8as_T4_v3"
DEFAULT_AZURE_ADMIN = "azureuser"
# Names Azure refuses for a Linux admin account (its documented list), plus what Linux itself reserves.
_AZURE_RESERVED_USERS = frozenset({
    "1", "123", "a", "actuser", "adm", "admin", "admin1", "admin2", "administrator", "aspnet", "backup",
    "console", "david", "guest", "john", "owner", "root", "server", "sql", "support", "support_388945a0", "sys",
    "test", "test1", "test2", "test3", "user", "user1", "user2", "user3", "user4", "user5", "daemon", "bin",
    "nobody", "docker",
})


@dataclass(frozen=True)
class SimNodes:
    """Extra CPU machines for simulation workers, joined to the host's swarm (docs/multi-node.md). count 0: none."""

    count: int = 0
    node_type: str = DEFAULT_AWS_SIM_NODE_TYPE  # an EC2 instance type or an Azure VM size
    spot: bool = True  # AWS simNodeMarket spot / on-demand; Azure simNodePriority spot / regular
    workers: Optional[int] = None  # per node; None: derived from the type's vCPUs (node_workers_for_vcpus)


class SettingsError(ValueError):
    """A stack setting is missing or malformed; the message names the file, key and expected value."""


@dataclass(frozen=True)
class CostControls:
    """What keeps a forgotten host from spending a month's budget: the same keys on both clouds."""

    idle_stop_minutes: int  # 0: the host never powers itself off for being idle
    power_off_after_max_minutes: bool  # a training time limit also powers the host off
    monthly_budget_usd: Optional[float]  # None: no budget
    alert_emails: tuple[str, ...]  # budget alerts and notifications go here
    notifications: bool  # e-mails on training start/finish/stall, interruption and auto-stop


@dataclass(frozen=True)
class AwsSettings:
    stack: str
    region: str
    instance_type: str
    market: Market
    spot_max_price: Optional[str]
    root_volume_gb: int
    ubuntu_version: str
    simapp_image: str
    simapp_version: str
    workers: Optional[int]  # None: derived from the instance type's vCPUs
    ssh_public_key: Optional[str]
    ssh_allowed_cidrs: tuple[str, ...]
    keep_bucket_on_destroy: bool
    upload_bucket: Optional[str]
    ready_timeout_minutes: int
    aws_profile: Optional[str]
    availability_zone: Optional[str]  # None: the first zone (by name) that offers the instance type
    cost: CostControls
    sim_nodes: SimNodes = SimNodes()
    dashboard: bool = False  # the first boot enables `deepracer dashboard` (127.0.0.1 only, a token to enter)

    @property
    def simapp(self) -> str:
        return f"{self.simapp_image}:{self.simapp_version}"


@dataclass(frozen=True)
class AzureSettings:
    stack: str
    location: str
    vm_size: str
    priority: Priority
    spot_max_price: Optional[str]  # USD per hour; None: up to the pay-as-you-go price (Azure's -1)
    os_disk_gb: int
    ubuntu_version: str
    simapp_image: str
    simapp_version: str
    workers: Optional[int]  # None: derived from the VM size's vCPUs (infra/pricing.py knows them)
    admin_username: str
    ssh_public_key: str
    ssh_allowed_cidrs: tuple[str, ...]
    keep_storage_on_destroy: bool
    ready_timeout_minutes: int
    cost: CostControls
    sim_nodes: SimNodes = SimNodes(node_type=DEFAULT_AZURE_SIM_NODE_SIZE)
    dashboard: bool = False  # the first boot enables `deepracer dashboard` (127.0.0.1 only, a token to enter)

    @property
    def simapp(self) -> str:
        return f"{self.simapp_image}:{self.simapp_version}"


# A getter returns the raw string of a key ("namespace:name") or None when it is not set.
Getter = Callable[[str], Optional[str]]


# A setting's type is its default's: str (int) with one, Optional without.
_Text = TypeVar("_Text", str, None)
_Number = TypeVar("_Number", int, None)


class _Reader:
    """Typed reads of raw config strings, each failing with the file and key in the message."""

    def __init__(self, stack: str, get: Getter) -> None:
        self.stack = stack
        self._get = get

    def fail(self, key: str, expected: str, got: object) -> SettingsError:
        return SettingsError(f"Pulumi.{self.stack}.yaml: {_full(key)}: expected {expected}, got {got!r}")

    def raw(self, key: str) -> Optional[str]:
        value = self._get(_full(key))
        if value is None:
            return None
        value = value.strip()
        return value or None

    def text(self, key: str, default: _Text, pattern: Optional[str] = None,
             expected: str = "") -> Union[str, _Text]:
        value = self.raw(key)
        if value is None:
            return default
        if pattern and not re.fullmatch(pattern, value):
            raise self.fail(key, expected or f"a value matching {pattern}", value)
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.raw(key) or default
        if value not in choices:
            raise self.fail(key, "one of " + ", ".join(choices), value)
        return value

    def integer(self, key: str, default: _Number, low: int, high: int) -> Union[int, _Number]:
        value = self.raw(key)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise self.fail(key, f"a whole number from {low} to {high}", value) from None
        if not low <= number <= high:
            raise self.fail(key, f"a whole number from {low} to {high}", value)
        return number

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if value.lower() in ("true", "yes", "1"):
            return True
        if value.lower() in ("false", "no", "0"):
            return False
        raise self.fail(key, "true or false", value)

    def string_list(self, key: str) -> tuple[str, ...]:
        value = self.raw(key)
        if value is None:
            return ()
        try:
            items = json.loads(value)
        except json.JSONDecodeError:
            items = None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise self.fail(key, "a list of strings", value)
        return tuple(items)

    def amount(self, key: str, high: float) -> Optional[float]:
        value = self.raw(key)
        if value is None:
            return None
        expected = f"an amount in USD above 0 and at most {high:,.0f}, such as 50, or no value"
        if not re.fullmatch(r"\d+(\.\d{1,2})?", value) or not 0 < float(value) <= high:
            raise self.fail(key, expected, value)
        return float(value)


def _sim_nodes(r: "_Reader", default_type: str, type_pattern: str, type_expected: str, market_key: str,
               markets: tuple[str, str], known: dict[str, tuple[int, float]], need_known: bool) -> SimNodes:
    count = r.integer("simNodes", 0, 0, MAX_SIM_NODES)
    node_type = r.text("simNodeType", default_type, type_pattern, type_expected)
    assert node_type is not None
    market = r.choice(market_key, markets[0], markets)
    workers = r.integer("simNodeWorkers", None, 1, MAX_WORKERS)
    if count and workers is None and need_known and node_type not in known:
        raise r.fail("simNodeWorkers", f"a number of workers per node from 1 to {MAX_WORKERS} for simNodeType "
                     f"{node_type}, whose vCPUs this project does not know", None)
    return SimNodes(count=count, node_type=node_type, spot=market == "spot", workers=workers)


def _full(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


def _cidrs(reader: _Reader, key: str, ipv4_only_because: str) -> tuple[str, ...]:
    cidrs = []
    for item in reader.string_list(key):
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise reader.fail(key, "CIDRs such as 203.0.113.7/32", item) from None
        if network.prefixlen == 0:
            # The whole internet on SSH is the one mistake this setting exists to prevent.
            raise reader.fail(key, "your own address range (e.g. 203.0.113.7/32), not the whole internet", item)
        if network.version != 4:
            raise reader.fail(key, f"IPv4 CIDRs such as 203.0.113.7/32 ({ipv4_only_because})", item)
        cidrs.append(str(network))
    return tuple(cidrs)


# Deliberately plain: the cloud checks deliverability; this catches a name, a list typed as text, a typo'd '@'.
_EMAIL = r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+"


def _cost_controls(r: _Reader) -> CostControls:
    idle = r.integer("idleStopMinutes", DEFAULT_IDLE_STOP_MINUTES, 0, MAX_IDLE_STOP_MINUTES)
    budget = r.amount("monthlyBudget", MAX_MONTHLY_BUDGET_USD)
    notifications = r.boolean("notifications", False)
    emails = r.string_list("alertEmails")
    if len(emails) > MAX_ALERT_EMAILS:
        raise r.fail("alertEmails", f"at most {MAX_ALERT_EMAILS} addresses (AWS Budgets' limit)", list(emails))
    for email in emails:
        if not re.fullmatch(_EMAIL, email):
            raise r.fail("alertEmails", "e-mail addresses such as me@example.com", email)
    if (budget is not None or notifications) and not emails:
        raise r.fail("alertEmails", "at least one e-mail address when monthlyBudget or notifications is set", [])
    if emails and budget is None and not notifications:
        raise r.fail("alertEmails", "no addresses unless monthlyBudget or notifications is set", list(emails))
    return CostControls(
        idle_stop_minutes=idle,
        power_off_after_max_minutes=r.boolean("powerOffAfterMaxMinutes", False),
        monthly_budget_usd=budget,
        alert_emails=emails,
        notifications=notifications,
    )


# EC2 imports RSA and Ed25519 public keys only, and Azure accepts the same two for Linux VMs: not ECDSA.
_SSH_KEY = r"ssh-(rsa|ed25519) [A-Za-z0-9+/=]+( .*)?"
_BUCKET = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"


def load_aws(stack: str, get: Getter) -> AwsSettings:
    """Read and validate the `aws` stack's settings."""
    r = _Reader(stack, get)
    region = r.text("aws:region", None, r"[a-z]{2}(-[a-z]+)+-\d", "an AWS region such as us-east-1")
    if region is None:
        raise r.fail("aws:region", "an AWS region such as us-east-1", None)
    market = r.choice("market", "spot", ("spot", "on-demand"))
    spot_max_price = r.text("spotMaxPrice", None, r"\d+(\.\d+)?", "a price in USD per hour such as 0.40")
    if spot_max_price is not None and market != "spot":
        raise r.fail("spotMaxPrice", "no value unless market is spot", spot_max_price)
    ssh_public_key = r.text("sshPublicKey", None, _SSH_KEY,
                            "an OpenSSH public key, RSA or Ed25519 (ssh-ed25519 AAAA...; EC2 imports no other kind)")
    ssh_allowed_cidrs = _cidrs(r, "sshAllowedCidrs", "a security group's cidr_blocks take IPv4 only")
    if ssh_allowed_cidrs and ssh_public_key is None:
        raise r.fail("sshPublicKey", "an OpenSSH public key when sshAllowedCidrs is set", None)
    zone = r.text("availabilityZone", None, re.escape(region) + r"[a-z]",
                  f"an availability zone of {region} such as {region}a, or no value")
    return AwsSettings(
        stack=stack,
        region=region,
        instance_type=r.text("instanceType", DEFAULT_AWS_INSTANCE_TYPE, r"[a-z][a-z0-9-]*\.[a-z0-9]+",
                             "an EC2 instance type such as g4dn.2xlarge"),
        market=market,  # type: ignore[arg-type]
        spot_max_price=spot_max_price,
        root_volume_gb=r.integer("rootVolumeGb", DEFAULT_ROOT_VOLUME_GB, MIN_ROOT_VOLUME_GB, 16384),
        ubuntu_version=r.choice("ubuntuVersion", "24.04", ("22.04", "24.04")),
        simapp_image=r.text("simappImage", DEFAULT_SIMAPP_IMAGE, r"[a-z0-9./_-]+",
                            "an image name such as awsdeepracercommunity/deepracer-simapp"),
        simapp_version=r.text("simappVersion", DEFAULT_SIMAPP_VERSION, r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
                              "an image tag such as 6.0.4-gpu"),
        workers=r.integer("workers", None, 1, MAX_WORKERS),
        ssh_public_key=ssh_public_key,
        ssh_allowed_cidrs=ssh_allowed_cidrs,
        keep_bucket_on_destroy=r.boolean("keepBucketOnDestroy", True),
        upload_bucket=r.text("uploadBucket", None, _BUCKET, "an S3 bucket name"),
        ready_timeout_minutes=r.integer("readyTimeoutMinutes", DEFAULT_READY_TIMEOUT_MINUTES, 5, 180),
        aws_profile=r.text("aws:profile", None),
        availability_zone=zone,
        cost=_cost_controls(r),
        sim_nodes=_sim_nodes(r, DEFAULT_AWS_SIM_NODE_TYPE, r"[a-z][a-z0-9-]*\.[a-z0-9]+",
                             "an EC2 instance type such as c7i.2xlarge", "simNodeMarket", ("spot", "on-demand"),
                             AWS_CPU_INSTANCE_TYPES, need_known=False),
        dashboard=r.boolean("dashboard", False),
    )


def _simapp(r: _Reader) -> tuple[str, str]:
    return (r.text("simappImage", DEFAULT_SIMAPP_IMAGE, r"[a-z0-9./_-]+",
                   "an image name such as awsdeepracercommunity/deepracer-simapp"),
            r.text("simappVersion", DEFAULT_SIMAPP_VERSION, r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
                   "an image tag such as 6.0.4-gpu"))


def load_azure(stack: str, get: Getter) -> AzureSettings:
    """Read and validate the `azure` stack's settings."""
    r = _Reader(stack, get)
    location = r.text("azure-native:location", DEFAULT_AZURE_LOCATION, r"[a-z][a-z0-9]{2,30}",
                      "an Azure location such as eastus (lowercase, no spaces)")
    priority = r.choice("priority", "spot", ("spot", "regular"))
    spot_max_price = r.text("spotMaxPrice", None, r"\d+(\.\d+)?", "a price in USD per hour such as 0.40")
    if spot_max_price is not None and priority != "spot":
        raise r.fail("spotMaxPrice", "no value unless priority is spot", spot_max_price)
    if spot_max_price is not None and float(spot_max_price) <= 0:
        raise r.fail("spotMaxPrice", "a price above 0 in USD per hour, or no value", spot_max_price)
    admin = r.text("adminUsername", DEFAULT_AZURE_ADMIN, r"[a-z_][a-z0-9_-]{0,31}",
                   "a Linux user name such as azureuser (lowercase letters, digits, _ and -)")
    assert admin is not None
    if admin in _AZURE_RESERVED_USERS:
        raise r.fail("adminUsername", "a user name Azure allows (not admin, root, user, test ...)", admin)
    # Password authentication is off, so without a key nobody could ever log in to the VM.
    ssh_public_key = r.text("sshPublicKey", None, _SSH_KEY,
                            "an OpenSSH RSA or Ed25519 public key (ssh-ed25519 AAAA...)")
    if ssh_public_key is None:
        raise r.fail("sshPublicKey", "an OpenSSH RSA or Ed25519 public key (required on Azure: password "
                     "login is off)", None)
    simapp_image, simapp_version = _simapp(r)
    vm_size = r.text("vmSize", DEFAULT_AZURE_VM_SIZE, r"Standard_[A-Za-z0-9_]+",
                     "an Azure VM size such as Standard_NC8as_T4_v3")
    workers = r.integer("workers", None, 1, MAX_WORKERS)
    if workers is None and azure_vcpus(vm_size) is None:
        # Azure has no lookup of a size's vCPUs that works before the VM exists; the table knows the GPU sizes.
        raise r.fail("workers", f"a number of workers from 1 to {MAX_WORKERS} for vmSize {vm_size}, whose vCPUs "
                     "this project does not know", None)
    return AzureSettings(
        stack=stack,
        location=location,
        vm_size=vm_size,
        priority=priority,  # type: ignore[arg-type]
        spot_max_price=spot_max_price,
        os_disk_gb=r.integer("osDiskGb", DEFAULT_ROOT_VOLUME_GB, MIN_ROOT_VOLUME_GB, 4095),
        ubuntu_version=r.choice("ubuntuVersion", "24.04", ("22.04", "24.04")),
        simapp_image=simapp_image,
        simapp_version=simapp_version,
        workers=workers,
        admin_username=admin,
        ssh_public_key=ssh_public_key,
        ssh_allowed_cidrs=_cidrs(r, "sshAllowedCidrs", "the VM has an IPv4 address only"),
        keep_storage_on_destroy=r.boolean("keepStorageOnDestroy", True),
        ready_timeout_minutes=r.integer("readyTimeoutMinutes", DEFAULT_READY_TIMEOUT_MINUTES, 5, 180),
        cost=_cost_controls(r),
        # Azure has no lookup of a size's vCPUs before the VM exists: unknown sizes need simNodeWorkers.
        sim_nodes=_sim_nodes(r, DEFAULT_AZURE_SIM_NODE_SIZE, r"Standard_[A-Za-z0-9_]+",
                             "an Azure VM size such as Standard_F8s_v2", "simNodePriority", ("spot", "regular"),
                             AZURE_CPU_VM_SIZES, need_known=True),
        dashboard=r.boolean("dashboard", False),
    )


def workers_for_vcpus(vcpus: int) -> int:
    """Simulation workers a host can carry: 2 vCPUs for the trainer, then 2 per worker (DRfC's guidance)."""
    return max(1, min(MAX_WORKERS, (vcpus - 2) // 2))


def node_workers_for_vcpus(vcpus: int) -> int:
    """Simulation workers a node carries: 2 vCPUs per worker, as on the host, but no trainer to keep room for."""
    return max(1, min(MAX_WORKERS, vcpus // 2))


def cloud_of(stack: str) -> Optional[str]:
    """The cloud a stack builds: the stacks `aws` and `azure`, and stacks with one of those names as a dash-separated
    part, so that fresh stacks beside the user's own (scripts/cloud-acceptance's `acc-aws-20261206-101500`) build
    the same program. None when the name says no cloud, or both."""
    named = {part for part in stack.split("-") if part in CLOUDS}
    return named.pop() if len(named) == 1 else None
