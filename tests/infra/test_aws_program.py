"""The whole Pulumi program for the `aws` stack, run under Pulumi's mocks with the stack file's config."""

from __future__ import annotations

import base64
import gzip
import json

import pulumi
import pytest
import yaml

from tests.infra.mocked_program import FAKE_AMI, resolve, run_program

BUCKET = "deepracer-aws-abc123"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
INSTANCE_ID = "i-0abc123def4567890"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx2cGaqZmVnJz0xB0dZ0m8Tq0sTlKk2rDqRz4jJtXyz builder@laptop"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:deepracer-aws-abc123"
EMAILS = ["me@example.com", "team@example.org"]


@pytest.fixture(scope="module")
def default_run():
    return run_program()


@pytest.fixture(scope="module")
def custom_run():
    return run_program({
        "deepracer-cloud:market": "spot",
        "deepracer-cloud:spotMaxPrice": "0.40",
        "deepracer-cloud:sshPublicKey": SSH_KEY,
        "deepracer-cloud:sshAllowedCidrs": '["203.0.113.7/32", "198.51.100.0/24"]',
        "deepracer-cloud:keepBucketOnDestroy": "false",
        "deepracer-cloud:uploadBucket": "my-droa-uploads",
        "deepracer-cloud:workers": "2",
        "deepracer-cloud:rootVolumeGb": "200",
        "deepracer-cloud:ubuntuVersion": "22.04",
    })


@pytest.fixture(scope="module")
def cost_run():
    """On-demand (the fallback), a budget, notifications, no idle stop, power-off after the time limit."""
    return run_program({
        "deepracer-cloud:market": "on-demand",
        "deepracer-cloud:monthlyBudget": "75",
        "deepracer-cloud:notifications": "true",
        "deepracer-cloud:alertEmails": json.dumps(EMAILS),
        "deepracer-cloud:idleStopMinutes": "0",
        "deepracer-cloud:powerOffAfterMaxMinutes": "true",
        "deepracer-cloud:availabilityZone": "us-east-1d",
    })


# -- bucket -----------------------------------------------------------------------------------------------

def test_bucket_is_private_with_all_four_public_access_blocks(default_run):
    block = default_run.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert block["bucket"] == BUCKET
    for key in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
        assert block[key] is True, key
    ownership = default_run.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs
    assert ownership["rule"]["objectOwnership"] == "BucketOwnerEnforced"


def test_bucket_is_encrypted_versioned_and_expires_old_versions(default_run):
    sse = default_run.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration").inputs
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    versioning = default_run.one("aws:s3/bucketVersioning:BucketVersioning").inputs
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    rule = default_run.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"][0]
    assert rule["status"] == "Enabled"
    assert rule["noncurrentVersionExpiration"]["noncurrentDays"] == 30
    assert rule["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == 7


def test_bucket_policy_refuses_requests_without_tls(default_run):
    policy = json.loads(default_run.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert set(statement["Resource"]) == {BUCKET_ARN, f"{BUCKET_ARN}/*"}


def test_bucket_and_its_protections_survive_destroy_by_default(default_run):
    bucket = default_run.one("aws:s3/bucket:Bucket")
    assert bucket.inputs["forceDestroy"] is False
    for typ in ("aws:s3/bucket:Bucket", "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
                "aws:s3/bucketPolicy:BucketPolicy", "aws:s3/bucketVersioning:BucketVersioning"):
        assert default_run.opts(typ, "models").retain_on_delete is True, typ


def test_bucket_goes_with_destroy_when_the_stack_says_so(custom_run):
    assert custom_run.one("aws:s3/bucket:Bucket").inputs["forceDestroy"] is True
    assert not custom_run.opts("aws:s3/bucket:Bucket", "models").retain_on_delete


def _object(run, name: str) -> dict:
    (found,) = [r for r in run.of_type("aws:s3/bucketObjectv2:BucketObjectv2") if r.name == name]
    return found.inputs


def test_session_package_is_uploaded_to_the_bucket(default_run):
    package = _object(default_run, "session-package")
    assert package["bucket"] == BUCKET
    assert package["key"] == "bootstrap/session.tar.gz"
    assert default_run.outputs["sessionPackageSha256"]


def test_the_budget_reaches_the_host_in_an_object_of_its_bucket_not_in_its_user_data(default_run, cost_run):
    # The host reads it with the bucket's grant (session.storage.cost_settings); a new budget rewrites the object
    # and leaves the instance alone.
    for run, budget in ((default_run, None), (cost_run, 75.0)):
        settings = _object(run, "cost-settings")
        assert (settings["bucket"], settings["key"], settings["contentType"]) == (
            BUCKET, "bootstrap/cost.json", "application/json")
        assert json.loads(settings["content"]) == {"monthlyBudgetUsd": budget}
        assert "cost.json" not in user_data_of(run) and "monthlyBudget" not in user_data_of(run)
    assert _policy(cost_run, "host-s3") == _policy(default_run, "host-s3")  # no new permission for it


# -- identity ---------------------------------------------------------------------------------------------

def _policy(run, name: str) -> dict:
    (policy,) = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == name]
    return json.loads(policy.inputs["policy"])


def _statements(run):
    return _policy(run, "host-s3")["Statement"]


def test_host_role_reaches_only_its_own_bucket(default_run):
    resources = [r for s in _statements(default_run) for r in ([s["Resource"]] if isinstance(s["Resource"], str)
                                                               else s["Resource"])]
    assert resources and set(resources) == {BUCKET_ARN, f"{BUCKET_ARN}/*"}
    actions = {a for s in _statements(default_run) for a in s["Action"]}
    assert not any("*" in a for a in actions)
    assert "s3:PutObject" in actions and "s3:ListBucket" in actions


def test_upload_bucket_is_writable_but_never_deletable(custom_run):
    upload = [s for s in _statements(custom_run) if "my-droa-uploads" in s["Resource"]]
    assert {s["Resource"] for s in upload} == {"arn:aws:s3:::my-droa-uploads", "arn:aws:s3:::my-droa-uploads/*"}
    upload_actions = {a for s in upload for a in s["Action"]}
    assert "s3:PutObject" in upload_actions
    assert "s3:DeleteObject" not in upload_actions


def test_role_policies_pass_parliament(default_run, custom_run, cost_run):
    import parliament

    policies = [r for run in (default_run, custom_run, cost_run) for r in run.of_type("aws:iam/rolePolicy:RolePolicy")]
    assert sorted({p.name for p in policies}) == ["host-notify", "host-s3"]
    for policy in policies:
        analysed = parliament.analyze_policy_string(policy.inputs["policy"])
        assert analysed.findings == [], [str(f) for f in analysed.findings]


def test_host_role_is_for_ec2_with_session_manager(default_run):
    trust = json.loads(default_run.one("aws:iam/role:Role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    attachment = default_run.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment").inputs
    assert attachment["policyArn"] == "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    profile = default_run.one("aws:iam/instanceProfile:InstanceProfile").inputs
    assert default_run.one("aws:ec2/instance:Instance").inputs["iamInstanceProfile"] == "host-profile"
    assert profile["role"] == "host-role"


# -- network ----------------------------------------------------------------------------------------------

def test_no_inbound_port_by_default(default_run):
    group = default_run.one("aws:ec2/securityGroup:SecurityGroup").inputs
    assert group.get("ingress", []) == []
    assert sorted((rule["fromPort"], rule["toPort"]) for rule in group["egress"]) == [(80, 80), (443, 443)]


def test_ssh_only_from_configured_networks(custom_run):
    (rule,) = custom_run.one("aws:ec2/securityGroup:SecurityGroup").inputs["ingress"]
    assert (rule["protocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 22, 22)
    assert rule["cidrBlocks"] == ["203.0.113.7/32", "198.51.100.0/24"]


def test_subnet_is_public_in_a_zone_that_offers_the_type(default_run):
    subnet = default_run.one("aws:ec2/subnet:Subnet").inputs
    assert subnet["availabilityZone"] == "us-east-1b"  # the first offering zone by name, stable across runs
    assert subnet["mapPublicIpOnLaunch"] is True
    offering = [args for token, args in default_run.invokes if token.endswith("getInstanceTypeOfferings")]
    assert offering[0]["filters"] == [{"name": "instance-type", "values": ["g4dn.2xlarge"]}]
    routes = default_run.one("aws:ec2/routeTable:RouteTable").inputs["routes"]
    assert routes == [{"cidrBlock": "0.0.0.0/0", "gatewayId": "igw-id"}]


# -- instance ---------------------------------------------------------------------------------------------

def test_instance_uses_the_dlami_imdsv2_with_two_hops_and_an_encrypted_root(default_run):
    instance = default_run.one("aws:ec2/instance:Instance").inputs
    assert instance["ami"] == FAKE_AMI
    parameters = [args["name"] for token, args in default_run.invokes if token == "aws:ssm/getParameter:getParameter"]
    assert parameters == [
        "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"]
    assert instance["instanceType"] == "g4dn.2xlarge"
    assert instance["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required",
                                           "httpPutResponseHopLimit": 2}
    assert instance["rootBlockDevice"] == {"volumeType": "gp3", "volumeSize": 150, "encrypted": True,
                                           "deleteOnTermination": True}
    assert "keyName" not in instance or not instance["keyName"]


def test_instance_is_not_replaced_by_a_new_ami_or_user_data(default_run):
    assert set(default_run.opts("aws:ec2/instance:Instance", "host").ignore_changes) == {
        "ami", "userData", "userDataBase64"}


def test_spot_is_the_default_persistent_and_stops_on_interruption(default_run):
    market = default_run.one("aws:ec2/instance:Instance").inputs["instanceMarketOptions"]
    # No maxPrice: up to the on-demand price, which AWS recommends (a cap only adds interruptions).
    assert market == {"marketType": "spot", "spotOptions": {
        "spotInstanceType": "persistent", "instanceInterruptionBehavior": "stop"}}


def test_spot_with_a_price_cap(custom_run):
    market = custom_run.one("aws:ec2/instance:Instance").inputs["instanceMarketOptions"]
    assert market == {"marketType": "spot", "spotOptions": {
        "spotInstanceType": "persistent", "instanceInterruptionBehavior": "stop", "maxPrice": "0.40"}}


def test_on_demand_fallback_buys_no_spot(cost_run):
    instance = cost_run.one("aws:ec2/instance:Instance").inputs
    assert not instance.get("instanceMarketOptions")


def test_shutdown_from_inside_stops_the_host_and_never_terminates_it(default_run, custom_run, cost_run):
    """Idle auto-stop and the time limit run `systemctl poweroff` on the host: that must be an EC2 stop."""
    for run in (default_run, custom_run, cost_run):
        assert run.one("aws:ec2/instance:Instance").inputs["instanceInitiatedShutdownBehavior"] == "stop"


def test_another_zone_as_a_spot_fallback(cost_run):
    assert cost_run.one("aws:ec2/subnet:Subnet").inputs["availabilityZone"] == "us-east-1d"
    # Same range in another zone: the old subnet (and its host) go before the new one is made.
    assert cost_run.opts("aws:ec2/subnet:Subnet", "public").delete_before_replace is True


def test_another_type_replaces_a_spot_host_which_aws_cannot_resize(default_run, cost_run):
    assert default_run.opts("aws:ec2/instance:Instance", "host").replace_on_changes == ["instanceType"]
    assert not cost_run.opts("aws:ec2/instance:Instance", "host").replace_on_changes  # on-demand: resized in place


# -- the fallbacks replace the host, the old one first --------------------------------------------------------

def _trigger(run) -> dict:
    return resolve(run.opts("aws:ec2/instance:Instance", "host").replacement_trigger)


def test_the_market_price_cap_and_zone_are_a_replacement_trigger(default_run, custom_run, cost_run):
    """pulumi-aws shows no diff when instance_market_options is left out (Optional+Computed): spot -> on-demand
    would keep a spot host. The trigger is what replaces it."""
    assert _trigger(default_run) == {"market": "spot", "spotMaxPrice": "", "availabilityZone": "us-east-1b"}
    assert _trigger(custom_run) == {"market": "spot", "spotMaxPrice": "0.40", "availabilityZone": "us-east-1b"}
    assert _trigger(cost_run) == {"market": "on-demand", "spotMaxPrice": "", "availabilityZone": "us-east-1d"}


def test_each_documented_aws_fallback_changes_the_trigger(default_run):
    """The README's fallbacks, one at a time from the default spot host: each is a new host."""
    on_demand = run_program({"deepracer-cloud:market": "on-demand"})
    other_zone = run_program({"deepracer-cloud:availabilityZone": "us-east-1d"})
    assert _trigger(on_demand) != _trigger(default_run)
    assert _trigger(other_zone) != _trigger(default_run)
    # Another type on spot: AWS cannot resize a spot instance (replace_on_changes, tested above).
    # Naming the zone the host already is in changes nothing.
    same_zone = run_program({"deepracer-cloud:availabilityZone": "us-east-1b"})
    assert _trigger(same_zone) == _trigger(default_run)


def test_a_replaced_host_goes_before_its_successor_starts(default_run, cost_run):
    """Twice the GPU quota is what the README does not ask for: delete before replace."""
    for run in (default_run, cost_run):
        assert run.opts("aws:ec2/instance:Instance", "host").delete_before_replace is True


def test_the_program_refuses_an_engine_that_would_ignore_the_trigger():
    """An engine without replacement triggers would leave a spot host spot, silently: stop with one line."""
    from pulumi.runtime.proto import resource_pb2

    with pytest.raises(pulumi.RunError) as raised:
        run_program(engine_lacks=(resource_pb2.RESOURCE_MONITOR_FEATURE_REPLACEMENT_TRIGGER,))
    assert str(raised.value) == (
        "this program needs the Pulumi CLI 3.231 or newer, whose engine replaces the host when a fallback setting "
        "changes (replacement triggers); see `pulumi version` and https://www.pulumi.com/docs/iac/download-install/")


def test_without_the_aws_extra_the_program_names_it(monkeypatch):
    """The deployer installs one cloud's extra (`.[aws]`): a missing provider is one line that says which."""
    import sys

    monkeypatch.delitem(sys.modules, "infra.aws", raising=False)  # imported again, as in a fresh `pulumi up`
    monkeypatch.setitem(sys.modules, "pulumi_aws", None)  # what `import pulumi_aws` meets when it is not installed
    with pytest.raises(pulumi.RunError) as raised:
        run_program()
    assert str(raised.value) == ("the aws stack needs pulumi_aws, which this Python lacks: "
                                 ".venv/bin/pip install -e '.[aws]'")


def test_the_host_waits_for_its_route_to_the_internet(default_run):
    """First boot pulls packages and images at once; without the route it would fail to reach them."""
    depends = default_run.opts("aws:ec2/instance:Instance", "host").depends_on
    routes = [d for d in depends if getattr(d, "_type", None) == "aws:ec2/routeTableAssociation:RouteTableAssociation"]
    assert [getattr(d, "_name", None) for d in routes] == ["public"]
    association = default_run.one("aws:ec2/routeTableAssociation:RouteTableAssociation").inputs
    assert (association["subnetId"], association["routeTableId"]) == ("public-id", "public-id")


def test_a_zone_that_does_not_offer_the_type_is_named():
    with pytest.raises(Exception) as raised:
        run_program({"deepracer-cloud:availabilityZone": "us-east-1a"})
    assert ("Pulumi.aws.yaml: deepracer-cloud:availabilityZone: us-east-1a does not offer g4dn.2xlarge; zones that "
            "do: us-east-1b, us-east-1d, us-east-1f") in str(raised.value)


def user_data_of(run) -> str:
    """The cloud-config the instance gets: its userDataBase64 unpacked as cloud-init does (gzip by its magic)."""
    inputs = run.one("aws:ec2/instance:Instance").inputs
    assert "userData" not in inputs  # one or the other: EC2 takes a single user data
    return gzip.decompress(base64.b64decode(inputs["userDataBase64"])).decode()


def test_user_data_is_the_rendered_cloud_config_for_this_stack(default_run):
    user_data = user_data_of(default_run)
    assert user_data.startswith("#cloud-config\n")
    config = yaml.safe_load(user_data)
    system_env = next(f["content"] for f in config["write_files"] if f["path"] == "/etc/deepracer/system.env")
    values = dict(line.split("=", 1) for line in system_env.splitlines() if line and not line.startswith("#"))
    assert values["DR_CLOUD"] == "aws"
    assert values["DR_LOCAL_S3_BUCKET"] == BUCKET
    assert values["DR_AWS_APP_REGION"] == "us-east-1"
    assert values["DR_SIMAPP_SOURCE"] == "awsdeepracercommunity/deepracer-simapp"
    assert values["DR_SIMAPP_VERSION"] == "6.0.4-gpu"
    assert values["DR_WORKERS"] == "3"  # 8 vCPUs: 2 for the trainer, 2 per worker
    assert (values["DR_IDLE_STOP_MINUTES"], values["DR_POWER_OFF_AFTER_MAX_MINUTES"]) == ("30", "False")
    assert "DR_NOTIFY_TOPIC_ARN" not in values


def test_custom_settings_reach_instance_and_user_data(custom_run):
    instance = custom_run.one("aws:ec2/instance:Instance").inputs
    assert instance["rootBlockDevice"]["volumeSize"] == 200
    assert instance["keyName"] == "host-key"
    assert custom_run.one("aws:ec2/keyPair:KeyPair").inputs["publicKey"] == SSH_KEY
    assert "DR_WORKERS=2\n" in user_data_of(custom_run)
    assert "DR_UPLOAD_S3_BUCKET=my-droa-uploads\n" in user_data_of(custom_run)
    parameters = [args["name"] for token, args in custom_run.invokes if token == "aws:ssm/getParameter:getParameter"]
    assert parameters == [
        "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"]


def test_workers_follow_the_instance_vcpus():
    run = run_program({"deepracer-cloud:instanceType": "g4dn.4xlarge"}, vcpus=16)
    assert run.outputs["workers"] == 7
    assert "DR_WORKERS=7\n" in user_data_of(run)


# -- cost controls, budget and notifications ----------------------------------------------------------------

def test_no_topic_budget_or_publish_permission_unless_asked(default_run, custom_run):
    for run in (default_run, custom_run):
        for typ in ("aws:sns/topic:Topic", "aws:sns/topicSubscription:TopicSubscription",
                    "aws:budgets/budget:Budget"):
            assert run.of_type(typ) == [], typ
        assert [p.name for p in run.of_type("aws:iam/rolePolicy:RolePolicy")] == ["host-s3"]


def test_notifications_go_to_a_topic_with_an_email_subscription_per_address(cost_run):
    topic = cost_run.one("aws:sns/topic:Topic").inputs
    assert topic["namePrefix"] == "deepracer-aws-"
    subscriptions = cost_run.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert sorted((s.inputs["topic"], s.inputs["protocol"], s.inputs["endpoint"]) for s in subscriptions) == [
        (TOPIC_ARN, "email", email) for email in sorted(EMAILS)]


def test_host_may_publish_to_that_topic_and_nothing_else(cost_run):
    policy = _policy(cost_run, "host-notify")
    assert policy["Statement"] == [{"Sid": "PublishNotifications", "Effect": "Allow", "Action": "sns:Publish",
                                    "Resource": TOPIC_ARN}]
    every_action = {a for p in cost_run.of_type("aws:iam/rolePolicy:RolePolicy")
                    for s in json.loads(p.inputs["policy"])["Statement"]
                    for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert {a for a in every_action if a.startswith("sns:")} == {"sns:Publish"}
    # The host finds its permission on first boot.
    depends = cost_run.opts("aws:ec2/instance:Instance", "host").depends_on
    assert "host-notify" in {getattr(d, "_name", None) for d in depends}


def test_monthly_budget_mails_at_80_and_100_percent_actual_and_100_forecast(cost_run):
    budget = cost_run.one("aws:budgets/budget:Budget").inputs
    assert (budget["budgetType"], budget["timeUnit"], budget["limitAmount"], budget["limitUnit"]) == (
        "COST", "MONTHLY", "75.00", "USD")
    assert budget["namePrefix"] == "deepracer-aws-"
    assert "costFilters" not in budget  # the whole account: see infra/aws.py
    alerts = sorted((n["notificationType"], n["threshold"]) for n in budget["notifications"])
    assert alerts == [("ACTUAL", 80.0), ("ACTUAL", 100.0), ("FORECASTED", 100.0)]
    for notification in budget["notifications"]:
        assert notification["comparisonOperator"] == "GREATER_THAN"
        assert notification["thresholdType"] == "PERCENTAGE"
        assert notification["subscriberEmailAddresses"] == EMAILS


def test_system_env_tells_the_host_its_topic_and_cost_controls(cost_run):
    config = yaml.safe_load(user_data_of(cost_run))
    system_env = next(f["content"] for f in config["write_files"] if f["path"] == "/etc/deepracer/system.env")
    values = dict(line.split("=", 1) for line in system_env.splitlines() if line and not line.startswith("#"))
    assert values["DR_NOTIFY_TOPIC_ARN"] == TOPIC_ARN
    assert (values["DR_IDLE_STOP_MINUTES"], values["DR_POWER_OFF_AFTER_MAX_MINUTES"]) == ("0", "True")


# -- readiness and outputs --------------------------------------------------------------------------------

def test_up_waits_for_the_host_with_the_projects_waiter(default_run):
    (wait,) = [c.inputs for c in default_run.of_type("command:local:Command") if c.name == "wait-ready"]
    assert " -m infra.wait_ready " in wait["create"]
    assert f"--bucket {BUCKET} --key hosts/{INSTANCE_ID}/bootstrap.json --region us-east-1" in wait["create"]
    assert wait["create"].endswith("--timeout-minutes 45")
    assert wait["triggers"] == [INSTANCE_ID]
    assert wait["environment"] == {"AWS_REGION": "us-east-1"}


def test_outputs_tell_the_user_how_to_connect_and_what_it_costs(default_run, custom_run):
    out = default_run.outputs
    assert out["instanceId"] == INSTANCE_ID
    assert out["bucket"] == BUCKET
    assert out["region"] == "us-east-1"
    assert out["publicDns"] == "ec2-198-51-100-7.compute-1.amazonaws.com"
    assert out["connect"] == f"aws ssm start-session --target {INSTANCE_ID} --region us-east-1"
    assert out["ssh"] is None
    # the dashboard listens on the host's 127.0.0.1: Session Manager forwards its port, no port opens
    assert out["dashboard"] == (f"aws ssm start-session --target {INSTANCE_ID} --region us-east-1 --document-name "
                                "AWS-StartPortForwardingSession --parameters portNumber=8200,localPortNumber=8200")
    assert out["start"] == f"aws ec2 start-instances --instance-ids {INSTANCE_ID} --region us-east-1"
    assert (out["notificationTopic"], out["budget"]) == (None, None)
    assert out["estimatedCostPerHour"] == {
        "market": "spot", "instanceUsd": 0.316, "rootVolumeUsd": 0.016, "totalUsd": 0.332,
        "onDemandTotalUsd": 0.768, "spotTotalUsd": 0.332,
        "basis": "us-east-1 Linux list prices, 2026; other regions differ by up to ~30%; spot taken as 42% of "
                 "on-demand (it moves hourly)"}
    assert custom_run.outputs["ssh"] == "ssh ubuntu@ec2-198-51-100-7.compute-1.amazonaws.com"


def test_outputs_show_the_price_of_both_markets_the_topic_and_the_budget(custom_run, cost_run):
    capped = custom_run.outputs["estimatedCostPerHour"]
    assert (capped["market"], capped["instanceUsd"]) == ("spot", 0.316)  # 42% of on-demand, under the 0.40 cap
    on_demand = cost_run.outputs["estimatedCostPerHour"]
    assert (on_demand["market"], on_demand["instanceUsd"], on_demand["totalUsd"]) == ("on-demand", 0.752, 0.768)
    assert (on_demand["onDemandTotalUsd"], on_demand["spotTotalUsd"]) == (0.768, 0.332)
    assert cost_run.outputs["notificationTopic"] == TOPIC_ARN
    assert cost_run.outputs["budget"] == "deepracer-aws-abc123"


# -- bad settings -----------------------------------------------------------------------------------------

def test_a_bad_setting_stops_the_program_naming_it():
    import pulumi

    with pytest.raises(pulumi.RunError) as raised:
        run_program({"deepracer-cloud:market": "reserved"})
    assert str(raised.value) == (
        "Pulumi.aws.yaml: deepracer-cloud:market: expected one of spot, on-demand, got 'reserved'")


def test_a_budget_without_an_address_stops_the_program_naming_it():
    import pulumi

    with pytest.raises(pulumi.RunError) as raised:
        run_program({"deepracer-cloud:monthlyBudget": "50"})
    assert str(raised.value) == (
        "Pulumi.aws.yaml: deepracer-cloud:alertEmails: expected at least one e-mail address when monthlyBudget or "
        "notifications is set, got []")


def test_an_instance_type_no_zone_offers_is_named():
    with pytest.raises(Exception) as raised:
        run_program({"deepracer-cloud:instanceType": "p9.mega"}, zones=[])
    assert "deepracer-cloud:instanceType: p9.mega is not offered" in str(raised.value)


def test_another_stack_name_is_refused():
    import pulumi

    with pytest.raises(pulumi.RunError, match="stack 'gcp'"):
        run_program(stack="gcp")
