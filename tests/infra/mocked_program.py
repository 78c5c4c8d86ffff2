"""Runs the real Pulumi program under Pulumi's own mocks (no CLI, no cloud) and records what it registers.

The mocks stand in for AWS or Azure: they answer the program's lookups (AMI parameter, instance type data, zone
offerings; the deployer's Azure client config) with fixed values and give every resource an id and the few
output properties the program reads (Azure names are outputs: the provider autonames resources).
"""

from __future__ import annotations

import asyncio
import json
import os
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import settings

REPO_ROOT = Path(__file__).resolve().parents[2]
PROGRAM_DIR = REPO_ROOT / "infra"
FAKE_AMI = "ami-0123456789abcdef0"
FAKE_ACCOUNT = "123456789012"
KMS_KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
GPU_ZONES = ["us-east-1f", "us-east-1b", "us-east-1d"]
SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
TENANT = "99999999-8888-7777-6666-555555555555"
DEPLOYER_OBJECT_ID = "d0d0d0d0-0000-4000-8000-00000000d0d0"
HOST_PRINCIPAL_ID = "a1a1a1a1-0000-4000-8000-00000000a1a1"
VM_ID = "5e1f0c2a-7b3d-4e59-9a0b-1c2d3e4f5a6b"
STORAGE_SUFFIX = "k3x9p2m7q4z8"
VAULT_SUFFIX = "v7q2m9k4x1z3"
MINIO_ACCESS_KEY = "ABCDEFGHIJ0123456789"
MINIO_SECRET_KEY = "s3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr"
AZURE_PUBLIC_IP = "20.51.0.7"
DEALLOCATE_ROLE_ID = "7c3f2a1e-5d4b-4c6a-8e9f-0a1b2c3d4e5f"
HOST_INSTANCE_ID = "i-0abc123def4567890"
HOST_SPOT_REQUEST_ID = "sir-0abc1234"
HOST_PRIVATE_IP = "10.42.1.10"


@dataclass
class Registered:
    typ: str
    name: str
    inputs: dict


@dataclass
class ProgramRun:
    resources: list[Registered] = field(default_factory=list)
    options: dict[tuple[str, str], pulumi.ResourceOptions] = field(default_factory=dict)
    secret_inputs: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # top-level inputs that are secret
    # The names of the resources each top-level input depends on (the engine's property dependencies): what makes
    # a resource be deleted before a delete-before-replace resource it depends on is replaced.
    input_resources: dict[tuple[str, str], dict[str, set[str]]] = field(default_factory=dict)
    invokes: list[tuple[str, dict]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def opts(self, typ: str, name: str) -> pulumi.ResourceOptions:
        return self.options[(typ, name)]

    def one(self, typ: str) -> Registered:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, found {[r.name for r in found]}"
        return found[0]


class AwsMocks(pulumi.runtime.Mocks):
    def __init__(self, run: ProgramRun, vcpus: int = 8, zones: list[str] | None = None,
                 instance_id: str = HOST_INSTANCE_ID, spot_request_id: str = HOST_SPOT_REQUEST_ID) -> None:
        self.run = run
        self.vcpus = vcpus
        self.zones = GPU_ZONES if zones is None else zones
        self.instance_id = instance_id
        self.spot_request_id = spot_request_id  # what EC2 reports for a spot host; an on-demand one has none

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.run.resources.append(Registered(args.typ, args.name, dict(args.inputs)))
        state = dict(args.inputs)
        rid = f"{args.name}-id"
        if args.typ == "aws:s3/bucket:Bucket":
            name = f"{args.inputs.get('bucketPrefix', 'bucket-')}abc123"
            state.update(bucket=name, arn=f"arn:aws:s3:::{name}")
            rid = name
        elif args.typ == "aws:ec2/instance:Instance" and args.name.startswith("sim-node-"):
            number = int(args.name.rsplit("-", 1)[1])
            rid = f"i-0node{number:012d}"
            state.update(privateIp=f"10.42.1.{20 + number}", publicIp=f"198.51.100.{20 + number}",
                         spotInstanceRequestId=f"sir-node{number}" if args.inputs.get("instanceMarketOptions")
                         else "")
        elif args.typ == "aws:ec2/instance:Instance":
            rid = self.instance_id
            state.update(publicDns="ec2-198-51-100-7.compute-1.amazonaws.com", publicIp="198.51.100.7",
                         privateIp=HOST_PRIVATE_IP,
                         spotInstanceRequestId=self.spot_request_id if args.inputs.get("instanceMarketOptions")
                         else "")
        elif args.typ == "aws:iam/role:Role":
            state.update(arn=f"arn:aws:iam::{FAKE_ACCOUNT}:role/{args.name}", name=f"{args.name}-role")
        elif args.typ == "aws:ssm/parameter:Parameter":
            rid = args.inputs["name"]
            state.update(arn=f"arn:aws:ssm:us-east-1:{FAKE_ACCOUNT}:parameter{rid}")
        elif args.typ == "aws:kms/key:Key":
            rid = KMS_KEY_ID
            state.update(keyId=rid, arn=f"arn:aws:kms:us-east-1:{FAKE_ACCOUNT}:key/{rid}")
        elif args.typ == "aws:iam/instanceProfile:InstanceProfile":
            state.update(name=f"{args.name}-profile")
        elif args.typ == "aws:ec2/keyPair:KeyPair":
            state.update(keyName=f"{args.name}-key")
        elif args.typ == "aws:sns/topic:Topic":
            name = f"{args.inputs.get('namePrefix', args.name + '-')}abc123"
            rid = f"arn:aws:sns:us-east-1:{FAKE_ACCOUNT}:{name}"
            state.update(name=name, arn=rid)
        elif args.typ == "aws:budgets/budget:Budget":
            name = f"{args.inputs.get('namePrefix', args.name + '-')}abc123"
            rid = f"{FAKE_ACCOUNT}:{name}"
            state.update(name=name)
        elif args.typ == "command:local:Command":
            state.update(stdout="host i-0abc123def4567890 is ready", stderr="")
        return [rid, state]

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.run.invokes.append((args.token, dict(args.args)))
        if args.token == "aws:ssm/getParameter:getParameter":
            return {"name": args.args["name"], "value": FAKE_AMI, "type": "String"}
        if args.token == "aws:ec2/getInstanceType:getInstanceType":
            return {"instanceType": args.args["instanceType"], "defaultVcpus": self.vcpus}
        if args.token == "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings":
            return {"id": "us-east-1", "locations": self.zones, "locationTypes": ["availability-zone"] * len(self.zones),
                    "instanceTypes": ["g4dn.2xlarge"] * len(self.zones)}
        raise AssertionError(f"the program made an invoke the mocks do not know: {args.token}")


_SECRET_SIG, _SECRET_VALUE = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"  # a secret on the wire


def _reveal(value: Any) -> Any:
    """Inputs as the provider would use them: secrets unwrapped (ProgramRun.secret_inputs says which were)."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG) == _SECRET_VALUE:
            return _reveal(value["value"])
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reveal(v) for v in value]
    return value


class AzureMocks(pulumi.runtime.Mocks):
    """Azure-native as the program sees it: autonamed resources (names are outputs), ARM ids, the VM's identity."""

    def __init__(self, run: ProgramRun) -> None:
        self.run = run

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = _reveal(dict(args.inputs))
        self.run.resources.append(Registered(args.typ, args.name, inputs))
        state = dict(inputs)
        name = f"{args.name}{'1a2b3c4'}"  # azure-native's autonaming: logical name + random suffix
        rid = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{inputs.get('resourceGroupName', 'none')}/{args.name}"
        if args.typ == "azure-native:resources:ResourceGroup":
            rid = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{name}"
        elif args.typ == "random:index/randomString:RandomString":
            state["result"] = {"storage-suffix": STORAGE_SUFFIX, "vault-suffix": VAULT_SUFFIX}.get(args.name,
                                                                                                 MINIO_ACCESS_KEY)
            name = rid = state["result"]
        elif args.typ == "azure-native:consumption:Budget":
            name = inputs["budgetName"]  # ARM's name of a budget is the name given
            rid = f"{inputs['scope']}/providers/Microsoft.Consumption/budgets/{name}"
        elif args.typ == "random:index/randomUuid:RandomUuid":
            state["result"] = rid = DEALLOCATE_ROLE_ID
        elif args.typ == "azure-native:compute:VirtualMachine":
            rid = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{inputs['resourceGroupName']}/providers"
                   f"/Microsoft.Compute/virtualMachines/{name}")
            state.update(vmId=VM_ID, identity={"type": "SystemAssigned", "principalId": HOST_PRINCIPAL_ID,
                                               "tenantId": TENANT})
        elif args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = MINIO_SECRET_KEY
            rid = "none"
        elif args.typ == "azure-native:keyvault:Vault":
            name = inputs["vaultName"]
            rid = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{inputs['resourceGroupName']}"
                   f"/providers/Microsoft.KeyVault/vaults/{name}")
        elif args.typ == "azure-native:network:ApplicationSecurityGroup":
            rid = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{inputs['resourceGroupName']}"
                   f"/providers/Microsoft.Network/applicationSecurityGroups/{name}")
        elif args.typ == "azure-native:storage:StorageAccount":
            name = inputs["accountName"]
            rid = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{inputs['resourceGroupName']}"
                   f"/providers/Microsoft.Storage/storageAccounts/{name}")
        elif args.typ == "azure-native:storage:BlobContainer":
            name = inputs["containerName"]
            rid = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{inputs['resourceGroupName']}/providers"
                   f"/Microsoft.Storage/storageAccounts/{inputs['accountName']}/blobServices/default/containers/{name}")
        elif args.typ == "azure-native:network:PublicIPAddress":
            state["ipAddress"] = AZURE_PUBLIC_IP
        elif args.typ == "command:local:Command":
            state.update(stdout=f"host {VM_ID} is ready", stderr="")
        state.setdefault("name", name)
        return [rid, state]

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.run.invokes.append((args.token, dict(args.args)))
        if args.token == "azure-native:authorization:getClientConfig":
            return {"clientId": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "objectId": DEPLOYER_OBJECT_ID,
                    "subscriptionId": SUBSCRIPTION, "tenantId": TENANT}
        raise AssertionError(f"the program made an invoke the mocks do not know: {args.token}")


def stack_file_config(stack: str = "aws") -> dict[str, str]:
    """The stack file's settings as `pulumi up` would pass them (structured values as JSON text)."""
    import yaml

    path = REPO_ROOT / f"Pulumi.{stack}.yaml"
    if not path.exists():
        return {}
    raw = yaml.safe_load(path.read_text())["config"]
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in raw.items()}


def run_program(overrides: dict[str, str] | None = None, stack: str = "aws", engine_lacks: tuple[int, ...] = (),
                **mock_args) -> ProgramRun:
    """Run infra/ with the stack file's config plus overrides; return what was registered and exported.

    It runs in infra/, as `pulumi up` runs it (the language host changes into the project's `main` directory,
    which is also where the engine starts provider plugins, pulumi-command's included).
    """
    run = ProgramRun()
    # A fresh root stack and output set per run: a program that failed (a test of a bad setting) leaves
    # exports and outputs behind that the next run's wait would otherwise await, and fail on.
    settings.ROOT.set(None)
    mocks = AzureMocks(run) if stack == "azure" else AwsMocks(run, **mock_args)
    pulumi.runtime.set_mocks(mocks, project="deepracer-cloud", stack=stack, preview=False)
    # An older engine: features it does not report to the program (e.g. replacement triggers before 3.231).
    settings.SETTINGS.monitor_features = set(settings.SETTINGS.monitor_features) - set(engine_lacks)
    settings.SETTINGS.outputs.clear()  # set_mocks leaves the last run's outputs to be awaited

    def record_options(args: pulumi.ResourceTransformationArgs) -> None:
        # Mocks never see resource options (retain_on_delete, ignore_changes) nor which inputs are secret;
        # a stack transformation does.
        run.options[(args.type_, args.name)] = args.opts
        secrets = run.secret_inputs.setdefault((args.type_, args.name), set())
        inputs = run.input_resources.setdefault((args.type_, args.name), {})
        for key, value in (args.props or {}).items():
            def note(is_secret: bool, key: str = key) -> None:
                if is_secret:
                    secrets.add(key)
            asyncio.ensure_future(pulumi.Output.from_input(value).is_secret()).add_done_callback(
                lambda future, note=note: note(bool(future.result())) if not future.exception() else None)

            def depend(future: asyncio.Future, key: str = key) -> None:
                if not future.exception():
                    inputs[key] = {getattr(r, "_name", None) for r in future.result()}
            asyncio.ensure_future(pulumi.Output.from_input(value).resources()).add_done_callback(depend)
        return None

    pulumi.runtime.register_stack_transformation(record_options)
    config = stack_file_config(stack)
    config.update(overrides or {})
    pulumi.runtime.set_all_config(config)
    cwd = os.getcwd()
    os.chdir(PROGRAM_DIR)
    try:
        runpy.run_path(str(PROGRAM_DIR), run_name="__main__")
        loop = asyncio.get_event_loop()
        loop.run_until_complete(pulumi.runtime.stack.wait_for_rpcs())
    finally:
        os.chdir(cwd)

    root = pulumi.runtime.settings.get_root_resource()
    outputs = getattr(root, "outputs", None) or {}
    if outputs:
        resolved = pulumi.Output.all(**outputs).apply(lambda values: run.outputs.update(values))
        loop.run_until_complete(pulumi.runtime.stack.wait_for_rpcs())
        del resolved
    return run


def resolve(value: Any) -> Any:
    """The value of an Output (or a plain value) after a mocked run, e.g. a resource option such as
    `replacement_trigger`."""
    if not isinstance(value, pulumi.Output):
        return value
    return asyncio.get_event_loop().run_until_complete(value.future())
