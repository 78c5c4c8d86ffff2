"""Simulation nodes (`simNodes`, docs/multi-node.md) under Pulumi's mocks, on AWS and Azure: one test per security
property (swarm ports between members only, nothing new from the internet, no join token anywhere the stack
writes, identities scoped to the one secret and the one bucket or container), cost, readiness, and `simNodes: 0`
rendering exactly today's stack."""

from __future__ import annotations

import base64
import gzip
import ipaddress
import json
import re

import pytest

from infra import sim_nodes
from infra.azure_sim_nodes import HOST_PRIVATE_IP as AZURE_HOST_IP
from infra.sim_nodes import SWARM_PORTS, TOKEN_PATTERN
from tests.cloudinit.test_user_data import files_of, parse_env
from tests.infra.mocked_program import (
    DEALLOCATE_ROLE_ID,
    FAKE_ACCOUNT,
    HOST_PRIVATE_IP,
    KMS_KEY_ID,
    SUBSCRIPTION,
    VAULT_SUFFIX,
    _reveal,
    run_program,
)
from tests.infra.test_azure_program import ACCOUNT, DATA_GROUP, HOST_GROUP, named, run_azure

BUCKET_ARN = "arn:aws:s3:::deepracer-aws-abc123"
PARAMETER = "/deepracer/aws/swarm-worker-join-token"
PARAMETER_ARN = f"arn:aws:ssm:us-east-1:{FAKE_ACCOUNT}:parameter{PARAMETER}"
KEY_ARN = f"arn:aws:kms:us-east-1:{FAKE_ACCOUNT}:key/{KMS_KEY_ID}"
VIA_SSM_FOR_THE_PARAMETER = {"StringEquals": {"kms:ViaService": "ssm.us-east-1.amazonaws.com",
                                              "kms:EncryptionContext:PARAMETER_ARN": PARAMETER_ARN}}
NODE_IDS = ["i-0node000000000001", "i-0node000000000002"]
FAKE_TOKEN = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"
EXPECTED_PORTS = {(2377, "tcp"), (7946, "tcp"), (7946, "udp"), (4789, "udp")}
VAULT = f"drswarm{VAULT_SUFFIX}"
VAULT_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{HOST_GROUP}/providers/Microsoft.KeyVault/vaults/{VAULT}"
SECRET_SCOPE = f"{VAULT_ID}/secrets/swarm-worker-join-token"
ASG_ID = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{HOST_GROUP}/providers/Microsoft.Network"
          "/applicationSecurityGroups/swarm1a2b3c4")


def _role(subscription_role: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{subscription_role}"


def _container(name: str) -> str:
    return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{DATA_GROUP}/providers/Microsoft.Storage"
            f"/storageAccounts/{ACCOUNT}/blobServices/default/containers/{name}")


@pytest.fixture(scope="module")
def aws_today():
    return run_program()


@pytest.fixture(scope="module")
def aws_nodes():
    return run_program({"deepracer-cloud:simNodes": "2"})


@pytest.fixture(scope="module")
def azure_today():
    return run_azure()


@pytest.fixture(scope="module")
def azure_nodes():
    return run_azure({"deepracer-cloud:simNodes": "2"})


def inventory(run) -> list[tuple[str, str]]:
    return sorted((r.typ, r.name) for r in run.resources)


def new_resources(run, today):
    before = set(inventory(today))
    return [r for r in run.resources if (r.typ, r.name) not in before]


def node_user_data_aws(run, name: str) -> str:
    (node,) = [r for r in run.of_type("aws:ec2/instance:Instance") if r.name == name]
    return gzip.decompress(base64.b64decode(node.inputs["userDataBase64"])).decode()


def custom_data(run, name: str) -> str:
    (vm,) = [r for r in run.of_type("azure-native:compute:VirtualMachine") if r.name == name]
    return base64.b64decode(vm.inputs["osProfile"]["customData"]).decode()


def token_findings(run, user_data: list[str]) -> list[str]:
    """Every place a swarm join token would be visible: resource inputs (the state), decoded user data, outputs."""
    places = {f"{r.typ} {r.name}": json.dumps(r.inputs, default=str) for r in run.resources}
    places.update({f"user data {n}": text for n, text in enumerate(user_data)})
    places["outputs"] = json.dumps(run.outputs, default=str)
    return [where for where, text in places.items() if TOKEN_PATTERN.search(text)]


# -- simNodes: 0 is today's stack -------------------------------------------------------------------------------

# What `pulumi up` made before simulation nodes existed, with the stack files' defaults.
AWS_TODAY = [
    ("aws:ec2/instance:Instance", "host"), ("aws:ec2/internetGateway:InternetGateway", "igw"),
    ("aws:ec2/routeTable:RouteTable", "public"), ("aws:ec2/routeTableAssociation:RouteTableAssociation", "public"),
    ("aws:ec2/securityGroup:SecurityGroup", "host"), ("aws:ec2/subnet:Subnet", "public"),
    ("aws:ec2/vpc:Vpc", "vpc"), ("aws:iam/instanceProfile:InstanceProfile", "host"), ("aws:iam/role:Role", "host"),
    ("aws:iam/rolePolicy:RolePolicy", "host-s3"),
    ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "host-ssm"), ("aws:s3/bucket:Bucket", "models"),
    ("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "models"),
    ("aws:s3/bucketObjectv2:BucketObjectv2", "cost-settings"),  # since the dashboard's cost card
    ("aws:s3/bucketObjectv2:BucketObjectv2", "session-package"),
    ("aws:s3/bucketOwnershipControls:BucketOwnershipControls", "models"),
    ("aws:s3/bucketPolicy:BucketPolicy", "models"),
    ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "models"),
    ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "models"),
    ("aws:s3/bucketVersioning:BucketVersioning", "models"), ("command:local:Command", "spot-request"),
    ("command:local:Command", "wait-ready"), ("deepracer:aws:Environment", "deepracer"),
    ("pulumi:pulumi:Stack", "deepracer-cloud-aws"),
]
OUTPUTS_TODAY = {"aws": {"instanceId", "publicDns", "publicIp", "bucket", "region", "workers", "simapp",
                         "sessionPackageSha256", "connect", "ssh", "dashboard", "start", "notificationTopic",
                         "budget", "estimatedCostPerHour"},
                 "azure": {"vmId", "vmName", "resourceGroup", "publicIp", "storageAccount", "container", "location",
                           "workers", "simapp", "sessionPackageSha256", "ssh", "dashboard", "bootstrapLog", "start",
                           "budget", "estimatedCostPerHour"}}


def test_aws_sim_nodes_0_renders_exactly_todays_resources(aws_today):
    assert [item for item in inventory(aws_today) if item[0] != "pulumi:pulumi:Stack"] == [
        item for item in AWS_TODAY if item[0] != "pulumi:pulumi:Stack"]
    assert set(aws_today.outputs) == OUTPUTS_TODAY["aws"]
    assert "DR_SIM_NODES" not in gzip.decompress(base64.b64decode(
        aws_today.one("aws:ec2/instance:Instance").inputs["userDataBase64"])).decode()


def test_with_0_nodes_the_other_node_settings_change_nothing(aws_today, azure_today):
    other = run_program({"deepracer-cloud:simNodeType": "c6i.4xlarge", "deepracer-cloud:simNodeMarket": "on-demand",
                         "deepracer-cloud:simNodeWorkers": "6"})
    def inputs(run):
        return sorted((r.typ, r.name, json.dumps(r.inputs, sort_keys=True, default=lambda o: getattr(o, "path", o)))
                      for r in run.resources)

    assert inputs(other) == inputs(aws_today)
    assert other.outputs == aws_today.outputs
    azure_other = run_azure({"deepracer-cloud:simNodeType": "Standard_D8s_v5",
                             "deepracer-cloud:simNodePriority": "regular"})
    assert inventory(azure_other) == inventory(azure_today)
    assert set(azure_today.outputs) == OUTPUTS_TODAY["azure"] == set(azure_other.outputs)
    assert "DR_SIM_NODES" not in custom_data(azure_today, "host")


def test_azure_sim_nodes_0_adds_nothing_of_the_swarm(azure_today):
    for run in (azure_today,):
        for typ in ("azure-native:keyvault:Vault", "azure-native:keyvault:Secret",
                    "azure-native:network:ApplicationSecurityGroup"):
            assert run.of_type(typ) == [], typ
        assert [r.name for r in run.of_type("azure-native:compute:VirtualMachine")] == ["host"]
        nic = run.one("azure-native:network:NetworkInterface").inputs["ipConfigurations"][0]
        assert nic["privateIPAllocationMethod"] == "Dynamic" and "applicationSecurityGroups" not in nic
        rules = run.one("azure-native:network:NetworkSecurityGroup").inputs["securityRules"]
        assert not [r for r in rules if r["name"].startswith("swarm")]


# -- AWS: the nodes and the swarm's security group --------------------------------------------------------------

def test_aws_nodes_are_cpu_instances_from_plain_ubuntu_in_the_hosts_subnet(aws_nodes):
    nodes = [r for r in aws_nodes.of_type("aws:ec2/instance:Instance") if r.name != "host"]
    assert [n.name for n in nodes] == ["sim-node-1", "sim-node-2"]
    for node in nodes:
        i = node.inputs
        assert i["instanceType"] == "c7i.2xlarge" and i["subnetId"] == "public-id"
        assert i["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required",
                                        "httpPutResponseHopLimit": 2}
        assert i["rootBlockDevice"]["encrypted"] is True
        assert i["instanceInitiatedShutdownBehavior"] == "stop"  # the watchdog's power-off stops, never terminates
        assert i["instanceMarketOptions"]["spotOptions"]["spotInstanceType"] == "persistent"
        assert i["iamInstanceProfile"] == "sim-node-profile"
        assert not i.get("keyName")
    parameters = {args["name"] for token, args in aws_nodes.invokes if token == "aws:ssm/getParameter:getParameter"}
    assert "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id" in parameters


def test_aws_swarm_rules_have_the_group_itself_as_their_only_source(aws_nodes):
    (group,) = [r for r in aws_nodes.of_type("aws:ec2/securityGroup:SecurityGroup") if r.name == "swarm"]
    for direction in ("ingress", "egress"):
        rules = group.inputs[direction]
        assert {(r["fromPort"], r["protocol"]) for r in rules} == EXPECTED_PORTS
        for rule in rules:
            assert rule["self"] is True and rule["fromPort"] == rule["toPort"]
            for source in ("cidrBlocks", "ipv6CidrBlocks", "prefixListIds", "securityGroups"):
                assert not rule.get(source), (direction, rule)
    # Host and nodes are the members; the nodes' other group has no inbound rule at all.
    instances = aws_nodes.of_type("aws:ec2/instance:Instance")
    assert all("swarm-id" in i.inputs["vpcSecurityGroupIds"] for i in instances) and len(instances) == 3
    (egress_only,) = [r for r in aws_nodes.of_type("aws:ec2/securityGroup:SecurityGroup") if r.name == "sim-node"]
    assert not egress_only.inputs.get("ingress")


def test_aws_nothing_new_is_open_to_the_internet(aws_today, aws_nodes):
    for resource in new_resources(aws_nodes, aws_today):
        if resource.typ.startswith("aws:ec2/securityGroup"):
            for rule in resource.inputs.get("ingress") or []:
                assert not rule.get("cidrBlocks") and not rule.get("ipv6CidrBlocks"), (resource.name, rule)
    # The host's own group is unchanged.
    host_group = [r.inputs for r in aws_nodes.of_type("aws:ec2/securityGroup:SecurityGroup") if r.name == "host"]
    assert host_group == [aws_today.one("aws:ec2/securityGroup:SecurityGroup").inputs]


def test_aws_no_join_token_in_any_user_data_state_or_output(aws_nodes):
    user_data = [node_user_data_aws(aws_nodes, name) for name in ("host", "sim-node-1", "sim-node-2")]
    assert token_findings(aws_nodes, user_data) == []
    parameter = aws_nodes.one("aws:ssm/parameter:Parameter")
    assert (parameter.inputs["name"], parameter.inputs["type"]) == (PARAMETER, "SecureString")
    assert _reveal(parameter.inputs["value"]) == sim_nodes.TOKEN_PLACEHOLDER
    assert aws_nodes.opts("aws:ssm/parameter:Parameter", "swarm-token").ignore_changes == ["value"]


def test_the_token_scan_finds_a_planted_token(monkeypatch):
    """The scan above can fail: a token the stack wrote into its secret is found in the state."""
    monkeypatch.setattr(sim_nodes, "TOKEN_PLACEHOLDER", FAKE_TOKEN)
    run = run_program({"deepracer-cloud:simNodes": "1"})
    assert token_findings(run, []) == ["aws:ssm/parameter:Parameter swarm-token"]


def _policies(run, prefix: str) -> dict[str, dict]:
    return {p.name: json.loads(p.inputs["policy"]) for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
            if p.name.startswith(prefix)}


def test_aws_node_role_reaches_the_one_bucket_and_the_one_parameter(aws_nodes):
    policies = _policies(aws_nodes, "sim-node")
    assert set(policies) == {"sim-node-s3", "sim-node-token"}
    assert policies["sim-node-token"]["Statement"] == [
        {"Sid": "ReadSwarmToken", "Effect": "Allow", "Action": "ssm:GetParameter", "Resource": PARAMETER_ARN},
        {"Sid": "DecryptSwarmToken", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY_ARN,
         "Condition": VIA_SSM_FOR_THE_PARAMETER}]
    s3_resources = {s["Resource"] for s in policies["sim-node-s3"]["Statement"]}
    assert s3_resources == {BUCKET_ARN, f"{BUCKET_ARN}/*"}
    # No managed policy on the node role: AmazonSSMManagedInstanceCore reads every parameter of the account.
    attachments = aws_nodes.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert [a.inputs["role"] for a in attachments] == ["host-role"]
    profiles = {p.name: p.inputs["role"] for p in aws_nodes.of_type("aws:iam/instanceProfile:InstanceProfile")}
    assert profiles == {"host": "host-role", "sim-node": "sim-node-role"}


def test_aws_host_may_write_the_one_parameter_and_nothing_more(aws_nodes):
    assert _policies(aws_nodes, "host-swarm")["host-swarm-token"]["Statement"] == [
        {"Sid": "WriteSwarmToken", "Effect": "Allow", "Action": "ssm:PutParameter", "Resource": PARAMETER_ARN},
        {"Sid": "EncryptSwarmToken", "Effect": "Allow", "Action": "kms:Encrypt", "Resource": KEY_ARN,
         "Condition": VIA_SSM_FOR_THE_PARAMETER}]
    depends = {getattr(d, "_name", None) for d in aws_nodes.opts("aws:ec2/instance:Instance", "host").depends_on}
    assert "host-swarm-token" in depends  # the host can write it at first boot


def test_aws_the_tokens_own_key_is_used_by_the_host_and_the_nodes_only(aws_nodes):
    """A customer-managed key instead of aws/ssm: a principal of the account with ssm:GetParameter on `*` (the host's
    AmazonSSMManagedInstanceCore, say) cannot decrypt the token; the account administers the key, never uses it."""
    parameter = aws_nodes.one("aws:ssm/parameter:Parameter").inputs
    assert parameter["keyId"] == KEY_ARN and parameter["type"] == "SecureString"
    key = aws_nodes.one("aws:kms/key:Key").inputs
    assert key["enableKeyRotation"] is True
    alias = aws_nodes.one("aws:kms/alias:Alias").inputs
    assert (alias["name"], alias["targetKeyId"]) == ("alias/deepracer-aws-swarm-token", KMS_KEY_ID)
    policy = json.loads(aws_nodes.one("aws:kms/keyPolicy:KeyPolicy").inputs["policy"])
    uses = {"kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:*"}
    by_principal = {s["Principal"]["AWS"]: s for s in policy["Statement"]}
    assert set(by_principal) == {f"arn:aws:iam::{FAKE_ACCOUNT}:root", f"arn:aws:iam::{FAKE_ACCOUNT}:role/host",
                                 f"arn:aws:iam::{FAKE_ACCOUNT}:role/sim-node"}
    assert not uses & set(by_principal[f"arn:aws:iam::{FAKE_ACCOUNT}:root"]["Action"])
    host, node = by_principal[f"arn:aws:iam::{FAKE_ACCOUNT}:role/host"], \
        by_principal[f"arn:aws:iam::{FAKE_ACCOUNT}:role/sim-node"]
    assert (host["Action"], host["Condition"]) == ("kms:Encrypt", VIA_SSM_FOR_THE_PARAMETER)
    assert (node["Action"], node["Condition"]) == ("kms:Decrypt", VIA_SSM_FOR_THE_PARAMETER)
    for name in ("sim-node-1", "sim-node-2"):  # a node reads the token once only its role may decrypt it
        depends = {getattr(d, "_name", None) for d in aws_nodes.opts("aws:ec2/instance:Instance", name).depends_on}
        assert "swarm-token-key" in depends


def test_aws_new_policies_pass_parliament(aws_nodes):
    import parliament

    for name in ("sim-node-s3", "sim-node-token", "host-swarm-token"):
        (policy,) = [p for p in aws_nodes.of_type("aws:iam/rolePolicy:RolePolicy") if p.name == name]
        assert parliament.analyze_policy_string(policy.inputs["policy"]).findings == [], name


def test_aws_nodes_know_the_managers_address_and_the_host_the_tokens_place(aws_nodes):
    for name in ("sim-node-1", "sim-node-2"):
        env = parse_env(files_of(node_user_data_aws(aws_nodes, name))["/etc/deepracer/node.env"]["content"])
        assert env["DR_SWARM_MANAGER"] == HOST_PRIVATE_IP
        assert env["DR_SWARM_TOKEN_PARAMETER"] == PARAMETER
        assert env["DR_SIMAPP_IMAGE"] == "awsdeepracercommunity/deepracer-simapp:6.0.4-gpu"
    host = parse_env(files_of(node_user_data_aws(aws_nodes, "host"))["/etc/deepracer/system.env"]["content"])
    assert (host["DR_SIM_NODES"], host["DR_SIM_NODE_WORKERS"], host["DR_SWARM_TOKEN_PARAMETER"],
            host["DR_SWARM_TOKEN_KEY_ID"]) == ("2", "4", PARAMETER, "alias/deepracer-aws-swarm-token")


def test_aws_up_waits_for_every_node_and_cancels_their_spot_requests(aws_nodes):
    commands = {c.name: c.inputs for c in aws_nodes.of_type("command:local:Command")}
    for node_id, name in zip(NODE_IDS, ("sim-node-1", "sim-node-2")):
        wait = commands[f"{name}-wait-ready"]
        assert f"--key hosts/{node_id}/bootstrap.json" in wait["create"] and wait["triggers"] == [node_id]
        assert f"--instance-id {node_id}" in commands[f"{name}-spot-request"]["delete"]


def test_aws_cost_and_outputs_include_the_nodes(aws_nodes):
    cost = aws_nodes.outputs["estimatedCostPerHour"]
    node = round(0.357 * 0.42 + 64 * 0.08 / 730, 3)
    assert cost["simNodes"] == {"count": 2, "type": "c7i.2xlarge", "market": "spot", "nodeUsd": node,
                                "nodesUsd": round(2 * (0.357 * 0.42 + 64 * 0.08 / 730), 3)}
    assert cost["hostTotalUsd"] == 0.332
    assert cost["totalUsd"] == pytest.approx(0.332 + cost["simNodes"]["nodesUsd"], abs=0.002)
    assert cost["onDemandTotalUsd"] == pytest.approx(0.768 + 2 * (0.357 + 64 * 0.08 / 730), abs=0.002)
    out = aws_nodes.outputs
    assert out["simNodes"]["instanceIds"] == NODE_IDS and out["simNodes"]["totalWorkers"] == 3 + 2 * 4
    assert out["start"] == f"aws ec2 start-instances --instance-ids i-0abc123def4567890 {' '.join(NODE_IDS)} " \
                           "--region us-east-1"


# -- Azure ------------------------------------------------------------------------------------------------------

def _nsg_rules(run) -> list[dict]:
    return run.one("azure-native:network:NetworkSecurityGroup").inputs["securityRules"]


def test_azure_swarm_rules_have_the_application_security_group_as_source(azure_nodes):
    allows = [r for r in _nsg_rules(azure_nodes) if r["name"].startswith("swarm-") and r["access"] == "Allow"]
    assert {(int(r["destinationPortRange"]), r["protocol"].lower()) for r in allows} == EXPECTED_PORTS
    for rule in allows:
        assert rule["direction"] == "Inbound"
        assert rule["sourceApplicationSecurityGroups"] == [{"id": ASG_ID}]
        assert rule["destinationApplicationSecurityGroups"] == [{"id": ASG_ID}]
        assert "sourceAddressPrefix" not in rule and "sourceAddressPrefixes" not in rule
    # Azure allows the whole VNet by default: the same ports from anyone else are denied right after.
    (deny,) = [r for r in _nsg_rules(azure_nodes) if r["name"] == "swarm-from-others"]
    assert deny["access"] == "Deny" and deny["priority"] > max(r["priority"] for r in allows)
    assert set(deny["destinationPortRanges"]) == {str(p) for p, _ in SWARM_PORTS}
    nics = azure_nodes.of_type("azure-native:network:NetworkInterface")
    assert len(nics) == 3
    for nic in nics:
        assert nic.inputs["ipConfigurations"][0]["applicationSecurityGroups"] == [{"id": ASG_ID}]
        assert nic.inputs["networkSecurityGroup"]["id"].endswith("/host")


@pytest.fixture(scope="module")
def azure_nodes_with_ssh():
    return run_azure({"deepracer-cloud:simNodes": "2", "deepracer-cloud:sshAllowedCidrs": '["203.0.113.0/24"]'})


# Azure's default inbound rules (https://learn.microsoft.com/azure/virtual-network/network-security-groups-overview,
# "Default security rules"), after every rule of the NSG's own.
_DEFAULT_INBOUND = [
    {"name": "AllowVNetInBound", "priority": 65000, "access": "Allow", "protocol": "*",
     "sourceAddressPrefix": "VirtualNetwork", "destinationAddressPrefix": "VirtualNetwork", "destinationPortRange": "*"},
    {"name": "AllowAzureLoadBalancerInBound", "priority": 65001, "access": "Allow", "protocol": "*",
     "sourceAddressPrefix": "AzureLoadBalancer", "destinationAddressPrefix": "*", "destinationPortRange": "*"},
    {"name": "DenyAllInBound", "priority": 65500, "access": "Deny", "protocol": "*", "sourceAddressPrefix": "*",
     "destinationAddressPrefix": "*", "destinationPortRange": "*"},
]
_VNET = ipaddress.ip_network("10.42.0.0/16")


def _matches_address(rule: dict, side: str, address: str, groups: set[str]) -> bool:
    if rule.get(f"{side}ApplicationSecurityGroups"):
        return any(group["id"] in groups for group in rule[f"{side}ApplicationSecurityGroups"])
    prefixes = rule.get(f"{side}AddressPrefixes") or [rule.get(f"{side}AddressPrefix")]
    ip = ipaddress.ip_address(address)
    for prefix in prefixes:
        if prefix in ("*", "Any") or (prefix == "VirtualNetwork" and ip in _VNET) or (
                prefix == "Internet" and ip not in _VNET and not ip.is_private):
            return True
        if prefix and prefix[0].isdigit() and ip in ipaddress.ip_network(prefix):
            return True
    return False


def _inbound_access(rules: list[dict], source: str, destination: str, port: int, *, members: set[str],
                    from_member: bool = False) -> str:
    """What an NSG does to a TCP connection, as Azure documents it: inbound rules in priority order, the first
    that matches decides; a connection to a public IP is evaluated with the NIC's private address as destination."""
    inbound = [r for r in rules if r.get("direction") == "Inbound"]
    for rule in sorted(inbound, key=lambda r: r["priority"]) + _DEFAULT_INBOUND:
        ports = rule.get("destinationPortRanges") or [rule.get("destinationPortRange")]
        if rule["protocol"] not in ("*", "Tcp") or not any(p == "*" or p == str(port) for p in ports):
            continue
        if _matches_address(rule, "source", source, members if from_member else set()) and _matches_address(
                rule, "destination", destination, members):
            return rule["access"]
    raise AssertionError("DenyAllInBound matches everything")


def test_azure_ssh_reaches_the_host_and_no_node(azure_nodes_with_ssh):
    rules = _nsg_rules(azure_nodes_with_ssh)
    members = {ASG_ID}  # the host's NIC and the nodes' are all in the swarm's group
    node_addresses = ("10.42.1.5", "10.42.1.6")  # dynamic addresses in the host's subnet
    assert _inbound_access(rules, "203.0.113.7", AZURE_HOST_IP, 22, members=members) == "Allow"
    for node in node_addresses:
        assert _inbound_access(rules, "203.0.113.7", node, 22, members=members) == "Deny", node
    # the evaluator itself: before the rule was scoped, a node was reachable (the rule as it was on main)
    unscoped = [{**r, "destinationAddressPrefix": "*"} if r["name"] == "ssh-from-configured-networks" else r
                for r in rules]
    assert _inbound_access(unscoped, "203.0.113.7", node_addresses[0], 22, members=members) == "Allow"
    # a node's log through the host (docs/multi-node.md: `ssh -J`): inside the VNet, Azure's default rule allows 22
    assert _inbound_access(rules, AZURE_HOST_IP, node_addresses[0], 22, members=members, from_member=True) == "Allow"
    # nothing else from the internet, and the swarm's ports between members only
    assert _inbound_access(rules, "203.0.113.7", AZURE_HOST_IP, 2377, members=members) == "Deny"
    assert _inbound_access(rules, node_addresses[0], AZURE_HOST_IP, 2377, members=members,
                           from_member=True) == "Allow"
    (ssh,) = [r for r in rules if r["name"] == "ssh-from-configured-networks"]
    assert ssh["destinationAddressPrefix"] == f"{AZURE_HOST_IP}/32"
    nic = named(azure_nodes_with_ssh, "azure-native:network:NetworkInterface", "host").inputs
    assert nic["ipConfigurations"][0]["privateIPAddress"] == AZURE_HOST_IP


def test_azure_nothing_new_is_open_to_the_internet(azure_today, azure_nodes):
    before = {r["name"] for r in _nsg_rules(azure_today)}
    for rule in _nsg_rules(azure_nodes):
        if rule["name"] in before or rule["access"] != "Allow":
            continue
        sources = [rule.get("sourceAddressPrefix"), *(rule.get("sourceAddressPrefixes") or [])]
        assert not {"*", "Internet", "0.0.0.0/0", "Any"} & set(filter(None, sources)), rule
        assert rule["direction"] == "Inbound" and rule.get("sourceApplicationSecurityGroups")


def test_azure_no_join_token_in_any_custom_data_state_or_output(azure_nodes):
    texts = [custom_data(azure_nodes, name) for name in ("host", "sim-node-1", "sim-node-2")]
    assert token_findings(azure_nodes, texts) == []
    secret = azure_nodes.one("azure-native:keyvault:Secret")
    assert secret.inputs["properties"] == {"value": sim_nodes.TOKEN_PLACEHOLDER}
    assert azure_nodes.opts("azure-native:keyvault:Secret", "swarm-token").ignore_changes == ["properties.value"]
    vault = azure_nodes.one("azure-native:keyvault:Vault").inputs["properties"]
    assert vault["enableRbacAuthorization"] is True  # role assignments, no access policies


def _assignments(run) -> dict[str, dict]:
    return {r.name: r.inputs for r in run.of_type("azure-native:authorization:RoleAssignment")}


def test_azure_node_identities_reach_the_one_secret_and_the_one_status_container(azure_nodes):
    assignments = _assignments(azure_nodes)
    for name in ("sim-node-1", "sim-node-2"):
        mine = {k: v for k, v in assignments.items() if k.startswith(name)}
        assert {k: (v["roleDefinitionId"], v["scope"]) for k, v in mine.items()} == {
            f"{name}-swarm-token": (_role("4633458b-17de-408a-b874-0445c86b69e6"), SECRET_SCOPE),
            f"{name}-status": (_role("ba92f5b4-2d11-453d-a403-e96b0029c9fe"), _container("node-status")),
            f"{name}-deallocate": (_role(DEALLOCATE_ROLE_ID),
                                   f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{HOST_GROUP}/providers"
                                   f"/Microsoft.Compute/virtualMachines/{name}1a2b3c4"),
        }
    # Nothing of a node's on the models container, the account, a group or the subscription.
    node_scopes = {v["scope"] for k, v in assignments.items() if k.startswith("sim-node")}
    assert _container("models") not in node_scopes


def test_azure_host_may_only_set_the_one_secret(azure_nodes):
    assignment = _assignments(azure_nodes)["host-swarm-token"]
    assert assignment["scope"] == SECRET_SCOPE
    definition = [r.inputs for r in azure_nodes.of_type("azure-native:authorization:RoleDefinition")
                  if r.name == "swarm-token-writer"][0]
    assert definition["permissions"] == [{"actions": [], "notActions": [], "dataActions": [
        "Microsoft.KeyVault/vaults/secrets/setSecret/action"], "notDataActions": []}]
    assert assignment["roleDefinitionId"].endswith(definition["roleDefinitionId"])


def test_azure_nodes_know_the_hosts_fixed_address_and_the_secret(azure_nodes):
    host_nic = [n.inputs for n in azure_nodes.of_type("azure-native:network:NetworkInterface") if n.name == "host"][0]
    config = host_nic["ipConfigurations"][0]
    assert (config["privateIPAllocationMethod"], config["privateIPAddress"]) == ("Static", "10.42.1.4")
    for name in ("sim-node-1", "sim-node-2"):
        env = parse_env(files_of(custom_data(azure_nodes, name))["/etc/deepracer/node.env"]["content"])
        assert env["DR_SWARM_MANAGER"] == "10.42.1.4"
        assert env["DR_SWARM_TOKEN_SECRET_URL"] == f"https://{VAULT}.vault.azure.net/secrets/swarm-worker-join-token"
    host = parse_env(files_of(custom_data(azure_nodes, "host"))["/etc/deepracer/system.env"]["content"])
    assert host["DR_SIM_NODES"] == "2" and host["DR_SWARM_TOKEN_SECRET_URL"].startswith(f"https://{VAULT}.")


def test_azure_nodes_are_spot_cpu_vms_and_up_waits_for_each(azure_nodes):
    vms = {v.name: v.inputs for v in azure_nodes.of_type("azure-native:compute:VirtualMachine")}
    for name in ("sim-node-1", "sim-node-2"):
        vm = vms[name]
        assert vm["hardwareProfile"]["vmSize"] == "Standard_F8s_v2"
        assert (vm["priority"], vm["evictionPolicy"]) == ("Spot", "Deallocate")
        assert vm["storageProfile"]["imageReference"]["publisher"] == "Canonical"
        assert vm["osProfile"]["linuxConfiguration"]["disablePasswordAuthentication"] is True
    waits = {c.name: c.inputs for c in azure_nodes.of_type("command:local:Command")}
    for name in ("sim-node-1", "sim-node-2"):
        assert "--container node-status" in waits[f"{name}-wait-ready"]["create"]
    reader = _assignments(azure_nodes)["deployer-node-status"]
    assert (reader["scope"], reader["roleDefinitionId"]) == (
        _container("node-status"), _role("2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"))


def test_azure_cost_includes_the_nodes(azure_nodes):
    cost = azure_nodes.outputs["estimatedCostPerHour"]
    fixed = 10.21 / 730 + 0.005
    assert cost["simNodes"]["nodeUsd"] == round(0.338 * 0.3 + fixed, 3)
    assert cost["totalUsd"] == pytest.approx(cost["hostTotalUsd"] + 2 * (0.338 * 0.3 + fixed), abs=0.002)
    assert azure_nodes.outputs["simNodes"]["totalWorkers"] == 3 + 2 * 4


def test_azure_unknown_node_size_needs_workers():
    import pulumi

    with pytest.raises(pulumi.RunError, match=re.escape("deepracer-cloud:simNodeWorkers: expected a number of "
                                                        "workers per node")):
        run_azure({"deepracer-cloud:simNodes": "1", "deepracer-cloud:simNodeType": "Standard_X9"})


# -- settings ---------------------------------------------------------------------------------------------------

def test_node_settings_defaults_and_bad_values():
    from infra.settings import SettingsError, SimNodes, load_aws, load_azure
    from tests.infra.mocked_program import stack_file_config

    aws = stack_file_config("aws")
    assert load_aws("aws", aws.get).sim_nodes == SimNodes(0, "c7i.2xlarge", True, None)
    azure = {**stack_file_config("azure"), "deepracer-cloud:sshPublicKey": "ssh-ed25519 AAAA me"}
    assert load_azure("azure", azure.get).sim_nodes == SimNodes(0, "Standard_F8s_v2", True, None)
    on_demand = load_aws("aws", {**aws, "deepracer-cloud:simNodes": "3", "deepracer-cloud:simNodeMarket": "on-demand",
                                 "deepracer-cloud:simNodeWorkers": "6"}.get).sim_nodes
    assert on_demand == SimNodes(3, "c7i.2xlarge", False, 6)
    for key, value, expected in (
            ("simNodes", "9", "deepracer-cloud:simNodes: expected a whole number from 0 to 8, got '9'"),
            ("simNodeMarket", "reserved", "deepracer-cloud:simNodeMarket: expected one of spot, on-demand"),
            ("simNodeType", "C7I LARGE", "deepracer-cloud:simNodeType: expected an EC2 instance type"),
            ("simNodeWorkers", "0", "deepracer-cloud:simNodeWorkers: expected a whole number from 1 to 8")):
        with pytest.raises(SettingsError, match=re.escape(f"Pulumi.aws.yaml: {expected}")):
            load_aws("aws", {**aws, f"deepracer-cloud:{key}": value}.get)
    with pytest.raises(SettingsError, match="simNodePriority: expected one of spot, regular"):
        load_azure("azure", {**azure, "deepracer-cloud:simNodePriority": "low"}.get)


def test_a_new_host_rebuilds_the_nodes_for_its_new_swarm(aws_nodes, azure_nodes):
    from tests.infra.mocked_program import HOST_INSTANCE_ID, VM_ID, resolve

    for name in ("sim-node-1", "sim-node-2"):
        assert resolve(aws_nodes.opts("aws:ec2/instance:Instance", name).replacement_trigger) == HOST_INSTANCE_ID
        assert resolve(azure_nodes.opts("azure-native:compute:VirtualMachine", name).replacement_trigger) == VM_ID
        assert aws_nodes.opts("aws:ec2/instance:Instance", name).delete_before_replace is True
