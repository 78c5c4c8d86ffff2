"""AWS simulation nodes (docs/multi-node.md): CPU instances in the host's subnet that join its swarm.

Created only with `simNodes` > 0. What they add to the stack:

- a **swarm** security group on the host and the nodes whose only rules are the swarm ports, in and out, with the
  group itself as the source and destination (`self`): only members reach them, nothing new is open to the internet;
  a **sim-node** group with the host's egress (HTTPS, HTTP) and no ingress;
- the **token parameter**, an SSM SecureString holding a placeholder, encrypted with a customer-managed KMS key of
  its own: the host role may write it (`ssm:PutParameter` on that parameter, `kms:Encrypt` through SSM for it), the
  node role may read it (`ssm:GetParameter`, `kms:Decrypt` likewise); the key's policy lets nobody else use it;
- the **node role**: the working bucket as the host's (its workers use it; the node reports there) and the token,
  nothing else (no Session Manager: its managed policy reads every parameter in the account);
- per node: an instance from Canonical's plain Ubuntu (Docker from the distribution, no GPU driver), its spot
  request's cleanup, and a readiness wait on its status object.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pulumi
import pulumi_aws as aws
import pulumi_command as command
from pulumi import Output, ResourceOptions

from infra import aws_policies, local_commands, sim_nodes
from infra.pricing import NODE_DISK_GB
from infra.sim_nodes import NodeConfig, aws_node_user_data

if TYPE_CHECKING:
    from infra.aws import AwsEnvironment

UBUNTU_AMI_PARAMETER = {
    "24.04": "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
    "22.04": "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id",
}


def swarm_rules() -> list[dict]:
    """The swarm's ports, from and to members of the group only."""
    return [{"description": f"swarm {port}/{protocol} between members", "protocol": protocol, "from_port": port,
             "to_port": port, "self": True} for port, protocol in sim_nodes.SWARM_PORTS]


def swarm_security_group(env: AwsEnvironment, vpc_id: pulumi.Input[str]) -> aws.ec2.SecurityGroup:
    return aws.ec2.SecurityGroup(
        "swarm", vpc_id=vpc_id, description="DeepRacer swarm: its ports between the host and its nodes only",
        ingress=swarm_rules(), egress=swarm_rules(), opts=ResourceOptions(parent=env))


class TokenChannel:
    """The token parameter and the customer-managed key that encrypts it. The key's policy (which names the node
    role, made later with the nodes) is `AwsSimNodes.key_policy`; until it is in place the key has AWS's default
    policy, under which the host's role policy lets it write at its first boot."""

    def __init__(self, env: AwsEnvironment, stack: str) -> None:
        child = ResourceOptions(parent=env)
        # $1 a month: the account's aws/ssm key would let any principal of the account with ssm:GetParameter on `*`
        # (AmazonSSMManagedInstanceCore, for one) read the token.
        self.key = aws.kms.Key(
            "swarm-token", description="deepracer-cloud: encrypts the swarm's worker join token (docs/multi-node.md)",
            enable_key_rotation=True, deletion_window_in_days=7, opts=child)
        self.alias = aws.kms.Alias("swarm-token", name=sim_nodes.token_key_alias(stack), target_key_id=self.key.key_id,
                                   opts=child)
        self.parameter = aws.ssm.Parameter(
            "swarm-token", name=sim_nodes.token_parameter_name(stack), type="SecureString",
            value=sim_nodes.TOKEN_PLACEHOLDER, key_id=self.key.arn,
            description="deepracer-cloud: the swarm's worker join token, written by the host (docs/multi-node.md)",
            # The host writes the token; the stack never reads it back, nor puts its placeholder back.
            opts=ResourceOptions(parent=env, ignore_changes=["value"]))


def host_token_policy(env: AwsEnvironment, role: aws.iam.Role, token: TokenChannel) -> aws.iam.RolePolicy:
    return aws.iam.RolePolicy(
        "host-swarm-token", role=role.id,
        policy=Output.all(token.parameter.arn, token.key.arn).apply(
            lambda a: json.dumps(aws_policies.swarm_token_write_policy(*a))),
        # The host names the key by its alias when it writes at first boot (and the host waits for this policy).
        opts=ResourceOptions(parent=env, depends_on=[token.alias]))


class AwsSimNodes:
    """The nodes, their identity and their waits (children of the environment component)."""

    def __init__(self, env: AwsEnvironment, subnet: aws.ec2.Subnet, vpc_id: pulumi.Input[str],
                 swarm_group: aws.ec2.SecurityGroup, token: TokenChannel, host: aws.ec2.Instance,
                 host_role: aws.iam.Role, internet_route: aws.ec2.RouteTableAssociation) -> None:
        s = env._settings
        n = s.sim_nodes
        child = ResourceOptions(parent=env)
        egress_group = aws.ec2.SecurityGroup(
            "sim-node", vpc_id=vpc_id, description="DeepRacer simulation node: no inbound, HTTPS and HTTP out",
            egress=[{"description": name, "protocol": "tcp", "from_port": port, "to_port": port,
                     "cidr_blocks": ["0.0.0.0/0"]} for port, name in ((443, "HTTPS"), (80, "HTTP"))], opts=child)
        self.role = aws.iam.Role(
            "sim-node", description="DeepRacer simulation node: the working bucket and the swarm token, nothing else",
            assume_role_policy=json.dumps(aws_policies.ec2_assume_role_policy()), opts=child)
        self.s3_policy = aws.iam.RolePolicy(
            "sim-node-s3", role=self.role.id,
            policy=env.bucket.arn.apply(lambda arn: json.dumps(aws_policies.sim_node_s3_policy(arn))), opts=child)
        self.token_policy = aws.iam.RolePolicy(
            "sim-node-token", role=self.role.id,
            policy=Output.all(token.parameter.arn, token.key.arn).apply(
                lambda a: json.dumps(aws_policies.swarm_token_read_policy(*a))), opts=child)
        # Now that the node role exists: the key is the host's to encrypt with and the nodes' to decrypt with, and
        # nobody else's.
        self.key_policy = aws.kms.KeyPolicy(
            "swarm-token-key", key_id=token.key.key_id,
            policy=Output.all(host_role.arn, self.role.arn, token.parameter.arn).apply(
                lambda a: json.dumps(aws_policies.swarm_token_key_policy(*a))), opts=child)
        profile = aws.iam.InstanceProfile("sim-node", role=self.role.name, opts=child)
        ami = aws.ssm.get_parameter_output(name=UBUNTU_AMI_PARAMETER[s.ubuntu_version],
                                           opts=pulumi.InvokeOutputOptions(parent=env)).value
        user_data = Output.all(env.bucket.bucket, host.private_ip, env.node_workers).apply(
            lambda a: aws_node_user_data(NodeConfig(
                cloud="aws", simapp_image=s.simapp, manager_address=a[1], workers=a[2], region=s.region,
                status_url=f"s3://{a[0]}/hosts/", token_parameter=sim_nodes.token_parameter_name(s.stack))))
        market = None
        if n.spot:
            # As the host: an interruption stops the node with its disk (the image stays pulled).
            market = {"market_type": "spot", "spot_options": {"spot_instance_type": "persistent",
                                                              "instance_interruption_behavior": "stop"}}
        self.instances: list[aws.ec2.Instance] = []
        self.waits: list[command.local.Command] = []
        for index in range(1, n.count + 1):
            name = f"sim-node-{index}"
            instance = aws.ec2.Instance(
                name, ami=ami, instance_type=n.node_type, subnet_id=subnet.id,
                vpc_security_group_ids=[egress_group.id, swarm_group.id], iam_instance_profile=profile.name,
                user_data_base64=user_data,
                # The watchdog powers a node off when the host's swarm is gone: a stop, never a termination.
                instance_initiated_shutdown_behavior="stop",
                # 2 hops: the workers' containers use the node role for the bucket, as on the host.
                metadata_options={"http_endpoint": "enabled", "http_tokens": "required",
                                  "http_put_response_hop_limit": 2},
                root_block_device={"volume_type": "gp3", "volume_size": NODE_DISK_GB, "encrypted": True,
                                   "delete_on_termination": True},
                instance_market_options=market,
                tags={"Name": f"deepracer-{s.stack}-{name}"},
                opts=ResourceOptions(
                    parent=env, depends_on=[internet_route, self.s3_policy, self.token_policy, self.key_policy],
                    # User data runs on first boot only: a new AMI or rendering leaves a node alone ...
                    ignore_changes=["ami", "userData", "userDataBase64"],
                    # ... but a new host is a new swarm at a new address: the nodes are rebuilt to join it.
                    replacement_trigger=host.id,
                    replace_on_changes=["instanceType"] if n.spot else None, delete_before_replace=True))
            self.instances.append(instance)
            self._cancel_spot_request_on_delete(env, name, instance)
            self.waits.append(self._wait_until_ready(env, name, instance))

    @staticmethod
    def _cancel_spot_request_on_delete(env: AwsEnvironment, name: str, instance: aws.ec2.Instance) -> None:
        """A node's persistent spot request goes with it, as the host's does (infra/spot_request.py)."""
        from infra.aws import REPO_ROOT

        s = env._settings
        environment = {"AWS_REGION": s.region, **({"AWS_PROFILE": s.aws_profile} if s.aws_profile else {})}
        command.local.Command(
            f"{name}-spot-request",
            delete=local_commands.python_module(
                REPO_ROOT, "infra.spot_request", "--instance-id", instance.id, "--request-id",
                instance.spot_instance_request_id.apply(lambda rid: rid or ""), "--region", s.region),
            dir=local_commands.checkout_dir(REPO_ROOT), environment=environment, triggers=[instance.id],
            opts=ResourceOptions(parent=env, depends_on=[instance]))

    @staticmethod
    def _wait_until_ready(env: AwsEnvironment, name: str, instance: aws.ec2.Instance) -> command.local.Command:
        """`pulumi up` returns when the node has joined the swarm with the image pulled (its `ready` report)."""
        from infra.aws import REPO_ROOT, STATUS_PREFIX

        s = env._settings
        create = local_commands.python_module(
            REPO_ROOT, "infra.wait_ready", "--bucket", env.bucket.bucket,
            "--key", Output.concat(STATUS_PREFIX, instance.id, "/bootstrap.json"),
            "--region", s.region, "--timeout-minutes", str(s.ready_timeout_minutes + sim_nodes.TOKEN_WAIT_MINUTES))
        environment = {"AWS_REGION": s.region, **({"AWS_PROFILE": s.aws_profile} if s.aws_profile else {})}
        return command.local.Command(
            f"{name}-wait-ready", create=create, dir=local_commands.checkout_dir(REPO_ROOT), environment=environment,
            triggers=[instance.id], opts=ResourceOptions(parent=env, depends_on=[instance]))
