"""The AWS environment: network, bucket, identity and one GPU instance that boots into a training host."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_aws as aws
import pulumi_command as command
from pulumi import Output, ResourceOptions

from infra import aws_policies, aws_sim_nodes, local_commands, pricing, sim_nodes
from infra.bootstrap import HostConfig, aws_user_data
from infra.settings import AwsSettings, node_workers_for_vcpus, workers_for_vcpus
from session.core.defaults import DASHBOARD_PORT
from session.core.pricing import COST_SETTINGS_KEY, cost_settings_text

REPO_ROOT = Path(__file__).resolve().parent.parent
AMI_PARAMETER = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-{version}/latest/ami-id"
PACKAGE_KEY = "bootstrap/session.tar.gz"
STATUS_PREFIX = "hosts/"
# Docker networks take 172.17+/16 and DRfC's trainer network another private range: keep the VPC clear of both.
VPC_CIDR = "10.42.0.0/16"
SUBNET_CIDR = "10.42.1.0/24"
NONCURRENT_VERSION_DAYS = 30


def host_replacement_trigger(settings: AwsSettings, zone: pulumi.Input[str]) -> Output[dict]:
    """The settings only a new instance can apply: any change to them replaces the host.

    pulumi-aws reads `instance_market_options` as Optional+Computed: leaving it out (spot -> on-demand) or
    leaving out its max price keeps the old value, with no diff, so without this the host would stay spot.
    EC2 cannot change an instance's market or a spot request's price, nor move an instance to another zone.
    """
    return Output.from_input(zone).apply(lambda resolved: {
        "market": settings.market, "spotMaxPrice": settings.spot_max_price or "", "availabilityZone": resolved})


class AwsEnvironment(pulumi.ComponentResource):
    """Everything `pulumi up --stack aws` creates, as children of one component."""

    def __init__(self, name: str, settings: AwsSettings, session_archive: Path,
                 opts: Optional[ResourceOptions] = None) -> None:
        super().__init__("deepracer:aws:Environment", name, None, opts)
        self._settings = settings
        child = ResourceOptions(parent=self)

        zone = self._zone_offering(settings.instance_type, settings.availability_zone)
        self.workers: Output[int] = (
            Output.from_input(settings.workers) if settings.workers is not None
            else aws.ec2.get_instance_type_output(instance_type=settings.instance_type,
                                                  opts=pulumi.InvokeOutputOptions(parent=self))
            .default_vcpus.apply(workers_for_vcpus)
        )

        # Workers each simulation node carries (none without nodes): from its type's vCPUs, as the host's.
        nodes = settings.sim_nodes
        self.node_workers: Output[int] = Output.from_input(0)
        if nodes.count and nodes.workers is not None:
            self.node_workers = Output.from_input(nodes.workers)
        elif nodes.count:
            self.node_workers = aws.ec2.get_instance_type_output(
                instance_type=nodes.node_type, opts=pulumi.InvokeOutputOptions(parent=self)
            ).default_vcpus.apply(node_workers_for_vcpus)
        subnet, internet_route = self._network(zone)
        # Simulation nodes (docs/multi-node.md): the swarm's group and token exist before the host, which joins
        # the one and writes the other at first boot.
        self.swarm_group = aws_sim_nodes.swarm_security_group(self, self.vpc.id) if nodes.count else None
        self.token = aws_sim_nodes.TokenChannel(self, settings.stack) if nodes.count else None
        self.bucket = self._bucket()
        package = aws.s3.BucketObjectv2(
            "session-package", bucket=self.bucket.id, key=PACKAGE_KEY, source=pulumi.FileAsset(str(session_archive)),
            content_type="application/gzip", opts=child)
        # The monthly budget for the host's cost card: an object it reads with the bucket's existing grant, never
        # in the user data (a change there replaces the host).
        self.cost_settings = aws.s3.BucketObjectv2(
            "cost-settings", bucket=self.bucket.id, key=COST_SETTINGS_KEY,
            content=cost_settings_text(settings.cost.monthly_budget_usd), content_type="application/json", opts=child)
        self.topic = self._notification_topic()
        profile = self._identity()
        self.instance = self._instance(subnet, internet_route, profile, package, zone)
        self.sim_nodes = (aws_sim_nodes.AwsSimNodes(self, subnet, self.vpc.id, self.swarm_group, self.token,
                                                    self.instance, self.role, internet_route)
                          if self.swarm_group is not None and self.token is not None else None)
        self.budget = self._budget()
        self._cancel_spot_request_on_delete()
        self.ready = self._wait_until_ready()

        self.instance_id = self.instance.id
        self.public_dns = self.instance.public_dns
        self.public_ip = self.instance.public_ip
        self.bucket_name = self.bucket.bucket
        self.ssm_command = Output.concat(
            "aws ssm start-session --target ", self.instance.id, " --region ", settings.region)
        self.ssh_command: Output[Optional[str]] = (
            Output.concat("ssh ubuntu@", self.instance.public_dns) if settings.ssh_public_key
            else Output.from_input(None))
        # `deepracer dashboard` listens on the host's 127.0.0.1 only: Session Manager forwards the port, nothing opens.
        self.dashboard_command = Output.concat(
            "aws ssm start-session --target ", self.instance.id, " --region ", settings.region,
            " --document-name AWS-StartPortForwardingSession --parameters portNumber=", str(DASHBOARD_PORT),
            ",localPortNumber=", str(DASHBOARD_PORT))
        # A stopped host (idle auto-stop, time limit, or a spot host you stopped) starts again only when asked.
        # (With simulation nodes, theirs too: they stop themselves when the host's swarm is gone.)
        node_ids = [node.id for node in self.sim_nodes.instances] if self.sim_nodes is not None else []
        self.start_command = Output.all(self.instance.id, *node_ids).apply(
            lambda ids: f"aws ec2 start-instances --instance-ids {' '.join(ids)} --region {settings.region}")
        self.notification_topic: Output[Optional[str]] = (
            self.topic.arn if self.topic is not None else Output.from_input(None))
        self.budget_name: Output[Optional[str]] = (
            self.budget.name if self.budget is not None else Output.from_input(None))
        self.hourly_estimate = pricing.aws_nodes_estimate(pricing.aws_hourly_estimate(
            settings.instance_type, settings.market, settings.root_volume_gb, settings.spot_max_price),
            nodes.count, nodes.node_type, nodes.spot)
        self.sim_nodes_output: Optional[Output[dict]] = None
        if self.sim_nodes is not None:
            self.sim_nodes_output = Output.all(
                [i.id for i in self.sim_nodes.instances], [i.private_ip for i in self.sim_nodes.instances],
                self.node_workers, self.workers).apply(lambda a: {
                    "count": nodes.count, "type": nodes.node_type, "instanceIds": a[0], "privateIps": a[1],
                    "workersPerNode": a[2], "totalWorkers": a[3] + nodes.count * a[2],
                    "tokenParameter": sim_nodes.token_parameter_name(settings.stack)})
        self.register_outputs({
            "instanceId": self.instance_id, "publicDns": self.public_dns, "bucket": self.bucket_name,
            "ready": self.ready.stdout,
        })

    # -- placement -----------------------------------------------------------------------------------------

    def _zone_offering(self, instance_type: str, wanted: Optional[str]) -> Output[str]:
        """The zone the stack names, or else the first one (by name, so it is stable) that offers the type."""
        offerings = aws.ec2.get_instance_type_offerings_output(
            location_type="availability-zone",
            filters=[{"name": "instance-type", "values": [instance_type]}],
            opts=pulumi.InvokeOutputOptions(parent=self))
        stack_file = f"Pulumi.{self._settings.stack}.yaml"

        def choose(locations: list[str]) -> str:
            if not locations:
                raise pulumi.RunError(
                    f"{stack_file}: deepracer-cloud:instanceType: {instance_type} is not "
                    f"offered in any availability zone of {self._settings.region}; choose another type or region")
            if wanted is not None and wanted not in locations:
                raise pulumi.RunError(
                    f"{stack_file}: deepracer-cloud:availabilityZone: {wanted} does not offer {instance_type}; "
                    f"zones that do: {', '.join(sorted(locations))}")
            return wanted or sorted(locations)[0]

        return offerings.locations.apply(choose)

    # -- network -------------------------------------------------------------------------------------------

    def _network(self, zone: Output[str]) -> tuple[aws.ec2.Subnet, aws.ec2.RouteTableAssociation]:
        """The public subnet, and the association that gives it its route to the internet gateway."""
        child = ResourceOptions(parent=self)
        self.vpc = vpc = aws.ec2.Vpc("vpc", cidr_block=VPC_CIDR, enable_dns_support=True, enable_dns_hostnames=True,
                          tags={"Name": f"deepracer-{self._settings.stack}"}, opts=child)
        gateway = aws.ec2.InternetGateway("igw", vpc_id=vpc.id, opts=child)
        # Public subnet without NAT: the host pulls ~10 GB of images, and a NAT gateway would cost more per
        # hour than the GPU's spot price. Nothing can come in: the security group has no inbound rule.
        # Another zone (the spot fallback) means a new subnet with the same range: the old one, and the host in
        # it, must go first.
        subnet = aws.ec2.Subnet("public", vpc_id=vpc.id, cidr_block=SUBNET_CIDR, availability_zone=zone,
                                map_public_ip_on_launch=True,
                                opts=ResourceOptions(parent=self, delete_before_replace=True))
        routes = aws.ec2.RouteTable("public", vpc_id=vpc.id,
                                    routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": gateway.id}], opts=child)
        internet_route = aws.ec2.RouteTableAssociation("public", subnet_id=subnet.id, route_table_id=routes.id,
                                                       opts=child)
        self.security_group = aws.ec2.SecurityGroup(
            "host", vpc_id=vpc.id, description="DeepRacer training host",
            ingress=[{"description": "SSH from the configured networks", "protocol": "tcp", "from_port": 22,
                      "to_port": 22, "cidr_blocks": list(self._settings.ssh_allowed_cidrs)}]
            if self._settings.ssh_allowed_cidrs else [],
            # Out: HTTPS (Docker Hub, S3, SSM, PyPI, NVIDIA) and HTTP (Ubuntu's apt mirrors); nothing else.
            egress=[{"description": port_name, "protocol": "tcp", "from_port": port, "to_port": port,
                     "cidr_blocks": ["0.0.0.0/0"]} for port, port_name in ((443, "HTTPS"), (80, "HTTP"))],
            opts=child)
        return subnet, internet_route

    # -- storage -------------------------------------------------------------------------------------------

    def _bucket(self) -> aws.s3.Bucket:
        keep = self._settings.keep_bucket_on_destroy
        # Kept: Pulumi forgets the bucket and its protections on destroy but AWS keeps them, models included.
        # Not kept: force_destroy empties the bucket, because the user said the models may go.
        kept = ResourceOptions(parent=self, retain_on_delete=keep)
        bucket = aws.s3.Bucket("models", bucket_prefix=f"deepracer-{self._settings.stack}-",
                               force_destroy=not keep, opts=kept)
        kept_after_bucket = ResourceOptions(parent=self, retain_on_delete=keep, depends_on=[bucket])
        aws.s3.BucketOwnershipControls("models", bucket=bucket.id,
                                       rule={"object_ownership": "BucketOwnerEnforced"}, opts=kept_after_bucket)
        access_block = aws.s3.BucketPublicAccessBlock(
            "models", bucket=bucket.id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, opts=kept_after_bucket)
        aws.s3.BucketServerSideEncryptionConfiguration(
            "models", bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"},
                    "bucket_key_enabled": True}],
            opts=kept_after_bucket)
        versioning = aws.s3.BucketVersioning("models", bucket=bucket.id,
                                             versioning_configuration={"status": "Enabled"}, opts=kept_after_bucket)
        aws.s3.BucketLifecycleConfiguration(
            "models", bucket=bucket.id,
            rules=[{
                "id": "expire-noncurrent-versions",
                "status": "Enabled",
                "filter": {"prefix": ""},
                # A checkpoint overwritten by mistake can be restored for this long, then stops costing money.
                "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_VERSION_DAYS},
                "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                "expiration": {"expired_object_delete_marker": True},
            }],
            opts=ResourceOptions(parent=self, retain_on_delete=keep, depends_on=[versioning]))
        aws.s3.BucketPolicy(
            "models", bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: json.dumps(aws_policies.tls_only_bucket_policy(arn))),
            # S3 refuses a bucket policy while the public access block is still being applied.
            opts=ResourceOptions(parent=self, retain_on_delete=keep, depends_on=[access_block]))
        return bucket

    # -- cost and notifications ----------------------------------------------------------------------------

    def _notification_topic(self) -> Optional[aws.sns.Topic]:
        """The topic the host publishes training start/finish/stall, interruption and auto-stop to."""
        cost = self._settings.cost
        if not cost.notifications:
            return None
        child = ResourceOptions(parent=self)
        topic = aws.sns.Topic("notifications", name_prefix=f"deepracer-{self._settings.stack}-",
                              display_name="DeepRacer", opts=child)
        for email in cost.alert_emails:
            # AWS mails each address a confirmation link first; until it is followed nothing is delivered there.
            aws.sns.TopicSubscription(f"notify-{email}", topic=topic.arn, protocol="email", endpoint=email,
                                      opts=child)
        return topic

    def _budget(self) -> Optional[aws.budgets.Budget]:
        cost = self._settings.cost
        if cost.monthly_budget_usd is None:
            return None
        # The account's whole monthly cost: a cost filter on the stack's tags would stay at $0 (and silent)
        # until someone activates them as cost allocation tags in the Billing console.
        return aws.budgets.Budget(
            "monthly", name_prefix=f"deepracer-{self._settings.stack}-", budget_type="COST", time_unit="MONTHLY",
            limit_amount=f"{cost.monthly_budget_usd:.2f}", limit_unit="USD",
            notifications=aws_policies.budget_notifications(cost.alert_emails),
            opts=ResourceOptions(parent=self))

    # -- identity ------------------------------------------------------------------------------------------

    def _identity(self) -> aws.iam.InstanceProfile:
        child = ResourceOptions(parent=self)
        self.role = aws.iam.Role(
            "host", description="DeepRacer training host: its own bucket and Session Manager, nothing else",
            assume_role_policy=json.dumps(aws_policies.ec2_assume_role_policy()), opts=child)
        self.s3_policy = aws.iam.RolePolicy(
            "host-s3", role=self.role.id,
            policy=self.bucket.arn.apply(
                lambda arn: json.dumps(aws_policies.host_s3_policy(arn, self._settings.upload_bucket))),
            opts=child)
        self.ssm_attachment = aws.iam.RolePolicyAttachment(
            "host-ssm", role=self.role.name, policy_arn=aws_policies.SSM_MANAGED_POLICY_ARN, opts=child)
        self.notify_policy: Optional[aws.iam.RolePolicy] = None
        if self.topic is not None:
            self.notify_policy = aws.iam.RolePolicy(
                "host-notify", role=self.role.id,
                policy=self.topic.arn.apply(lambda arn: json.dumps(aws_policies.host_notify_policy(arn))),
                opts=child)
        self.token_policy = (aws_sim_nodes.host_token_policy(self, self.role, self.token)
                             if self.token is not None else None)
        return aws.iam.InstanceProfile("host", role=self.role.name, opts=child)

    # -- instance ------------------------------------------------------------------------------------------

    def _instance(self, subnet: aws.ec2.Subnet, internet_route: aws.ec2.RouteTableAssociation,
                  profile: aws.iam.InstanceProfile, package: aws.s3.BucketObjectv2, zone: Output[str]
                  ) -> aws.ec2.Instance:
        s = self._settings
        child = ResourceOptions(parent=self)
        ami = aws.ssm.get_parameter_output(name=AMI_PARAMETER.format(version=s.ubuntu_version),
                                           opts=pulumi.InvokeOutputOptions(parent=self)).value
        key_name = None
        if s.ssh_public_key:
            key_name = aws.ec2.KeyPair("host", public_key=s.ssh_public_key, opts=child).key_name
        topic_arn = self.topic.arn if self.topic is not None else None
        nodes = s.sim_nodes
        user_data = Output.all(self.bucket.bucket, self.workers, topic_arn, self.node_workers).apply(
            lambda args: aws_user_data(HostConfig(
                cloud="aws", region=s.region, bucket=args[0], simapp_image=s.simapp, workers=args[1],
                session_package_url=f"s3://{args[0]}/{PACKAGE_KEY}", status_url=f"s3://{args[0]}/{STATUS_PREFIX}",
                upload_bucket=s.upload_bucket, idle_stop_minutes=s.cost.idle_stop_minutes,
                power_off_after_max_minutes=s.cost.power_off_after_max_minutes, notify_topic_arn=args[2],
                dashboard=s.dashboard,
                sim_nodes=nodes.count, sim_node_workers=args[3] or 0,
                swarm_token_parameter=sim_nodes.token_parameter_name(s.stack) if nodes.count else None,
                swarm_token_key=sim_nodes.token_key_alias(s.stack) if nodes.count else None)))
        market = None
        if s.market == "spot":
            market = {"market_type": "spot", "spot_options": {
                # Persistent + stop: an interruption stops the VM with its disk; AWS starts it again when
                # capacity returns, instead of terminating it and losing the root volume.
                "spot_instance_type": "persistent",
                "instance_interruption_behavior": "stop",
                "max_price": s.spot_max_price,
            }}
        return aws.ec2.Instance(
            "host",
            ami=ami,
            instance_type=s.instance_type,
            subnet_id=subnet.id,
            vpc_security_group_ids=[self.security_group.id,
                                    *([self.swarm_group.id] if self.swarm_group is not None else [])],
            iam_instance_profile=profile.name,
            key_name=key_name,
            user_data_base64=user_data,
            # The idle check and a time limit power the host off from inside: that must stop it (disk kept, no
            # compute billed), never terminate it. (AWS's default for EBS-backed instances; said, not assumed.)
            instance_initiated_shutdown_behavior="stop",
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                # 2 hops: the simulator's containers sit behind a Docker bridge and need the instance role.
                "http_put_response_hop_limit": 2,
            },
            root_block_device={"volume_type": "gp3", "volume_size": s.root_volume_gb, "encrypted": True,
                               "delete_on_termination": True},
            instance_market_options=market,
            tags={"Name": f"deepracer-{s.stack}"},
            opts=ResourceOptions(
                parent=self,
                # The host must find its package and its permissions on first boot, and reach the internet: its
                # first boot pulls packages and images the moment it starts, so the route must exist by then.
                depends_on=[package, internet_route, self.s3_policy, self.ssm_attachment,
                            *([self.notify_policy] if self.notify_policy is not None else []),
                            *([self.token_policy] if self.token_policy is not None else [])],
                # A new DLAMI is published every few weeks and user data only runs on first boot: neither
                # should stop or replace a training host. `pulumi up --replace` rebuilds it on purpose. (Hosts
                # built before the user data was gzipped have it in userData: both are ignored.)
                ignore_changes=["ami", "userData", "userDataBase64"],
                # AWS cannot change a spot instance's type (the fallback to another type): a new host, then.
                replace_on_changes=["instanceType"] if s.market == "spot" else None,
                replacement_trigger=host_replacement_trigger(s, zone),
                # The fallbacks exist for want of capacity, and the quota the README asks for is one host's
                # vCPUs: the old host goes before its replacement is launched (the models stay in the bucket).
                delete_before_replace=True,
            ),
        )

    def _cancel_spot_request_on_delete(self) -> command.local.Command:
        """When the host goes (a fallback, `pulumi destroy`), its persistent spot request goes first.

        pulumi-aws terminates the instance but leaves the request live (infra/spot_request.py: where, in the
        provider's source), and a live persistent request launches another instance. The line names the request
        pulumi-aws recorded for the host, so it is found even after it replaced the host with an instance of its
        own (which it then terminates). Registered for an on-demand host too: a spot host's fallback to on-demand
        needs the command that was registered with the spot host, and on an on-demand host it finds no request
        and does nothing.
        """
        s = self._settings
        environment = {"AWS_REGION": s.region, **({"AWS_PROFILE": s.aws_profile} if s.aws_profile else {})}
        request_id = self.instance.spot_instance_request_id.apply(lambda rid: rid or "")  # on-demand: none
        return command.local.Command(
            "spot-request",
            delete=local_commands.python_module(REPO_ROOT, "infra.spot_request", "--instance-id", self.instance.id,
                                                "--request-id", request_id, "--region", s.region),
            dir=local_commands.checkout_dir(REPO_ROOT), environment=environment,
            # A new host, a new command: replacing the instance deletes this one first (it depends on the
            # instance's id), which cancels the old host's request before the old host is terminated.
            triggers=[self.instance.id],
            opts=ResourceOptions(parent=self, depends_on=[self.instance]))

    def _wait_until_ready(self) -> command.local.Command:
        s = self._settings
        create = local_commands.python_module(
            REPO_ROOT, "infra.wait_ready", "--bucket", self.bucket.bucket,
            "--key", Output.concat(STATUS_PREFIX, self.instance.id, "/bootstrap.json"),
            "--region", s.region, "--timeout-minutes", str(s.ready_timeout_minutes))
        environment = {"AWS_REGION": s.region}
        if s.aws_profile:
            environment["AWS_PROFILE"] = s.aws_profile
        return command.local.Command(
            "wait-ready", create=create, dir=local_commands.checkout_dir(REPO_ROOT), environment=environment,
            # Wait again only for a new host; an existing ready host stays ready. (A wait that failed is not kept
            # in the state: the next `pulumi up` waits again, see infra/wait_ready.py on an old failure.)
            triggers=[self.instance.id],
            opts=ResourceOptions(parent=self, depends_on=[self.instance]))
