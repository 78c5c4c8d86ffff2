"""The whole Pulumi program for the `azure` stack, run under Pulumi's mocks with the stack file's config."""

from __future__ import annotations

import base64
import json
import re
import subprocess

import pulumi
import pytest
import yaml

from infra.bootstrap import AZURE_CUSTOM_DATA_LIMIT
from tests.infra.mocked_program import (
    AZURE_PUBLIC_IP,
    DEALLOCATE_ROLE_ID,
    DEPLOYER_OBJECT_ID,
    HOST_PRINCIPAL_ID,
    MINIO_ACCESS_KEY,
    MINIO_SECRET_KEY,
    STORAGE_SUFFIX,
    SUBSCRIPTION,
    VM_ID,
    run_program,
)

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx2cGaqZmVnJz0xB0dZ0m8Tq0sTlKk2rDqRz4jJtXyz builder@laptop"
ACCOUNT = f"deepracer{STORAGE_SUFFIX}"
DATA_GROUP = "deepracer-data1a2b3c4"
HOST_GROUP = "deepracer-host1a2b3c4"
VM_NAME = "host1a2b3c4"
CONTAINER_SCOPE = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{DATA_GROUP}/providers/Microsoft.Storage"
                   f"/storageAccounts/{ACCOUNT}/blobServices/default/containers/models")
BLOB_DATA_CONTRIBUTOR = (f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/"
                         "ba92f5b4-2d11-453d-a403-e96b0029c9fe")
VM_RESOURCE_ID = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{HOST_GROUP}/providers/Microsoft.Compute"
                  f"/virtualMachines/{VM_NAME}")
EMAILS = ["me@example.com", "team@example.org"]
STORAGE_TYPES = ("azure-native:resources:ResourceGroup", "azure-native:storage:StorageAccount",
                 "azure-native:storage:BlobContainer", "azure-native:storage:BlobServiceProperties",
                 "azure-native:storage:ManagementPolicy")


def run_azure(overrides: dict[str, str] | None = None):
    return run_program({"deepracer-cloud:sshPublicKey": SSH_KEY, **(overrides or {})}, stack="azure")


@pytest.fixture(scope="module")
def default_run():
    return run_azure()


@pytest.fixture(scope="module")
def cost_run():
    """Regular priority (the fallback), a budget, notifications, a 45-minute idle stop, power-off at the limit."""
    return run_azure({
        "deepracer-cloud:priority": "regular",
        "deepracer-cloud:monthlyBudget": "60",
        "deepracer-cloud:notifications": "true",
        "deepracer-cloud:alertEmails": json.dumps(EMAILS),
        "deepracer-cloud:idleStopMinutes": "45",
        "deepracer-cloud:powerOffAfterMaxMinutes": "true",
    })


@pytest.fixture(scope="module")
def custom_run():
    return run_azure({
        "azure-native:location": "westeurope",
        "deepracer-cloud:priority": "spot",
        "deepracer-cloud:spotMaxPrice": "0.30",
        "deepracer-cloud:sshAllowedCidrs": '["203.0.113.7/32", "198.51.100.0/24"]',
        "deepracer-cloud:keepStorageOnDestroy": "false",
        "deepracer-cloud:workers": "2",
        "deepracer-cloud:osDiskGb": "200",
        "deepracer-cloud:ubuntuVersion": "22.04",
        "deepracer-cloud:adminUsername": "racer",
    })


def named(run, typ: str, name: str):
    found = [r for r in run.of_type(typ) if r.name == name]
    assert len(found) == 1, f"expected one {typ} named {name}, found {len(found)}"
    return found[0]


def vm(run):
    return run.one("azure-native:compute:VirtualMachine").inputs


def custom_data(run) -> str:
    return base64.b64decode(vm(run)["osProfile"]["customData"]).decode()


def written_files(run) -> dict[str, dict]:
    import gzip

    files = {}
    for entry in yaml.safe_load(custom_data(run))["write_files"]:
        content = entry["content"]
        if entry.get("encoding") == "gz+b64":
            content = gzip.decompress(base64.b64decode(content)).decode()
        files[entry["path"]] = {**entry, "content": content}
    return files


def env_values(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


# -- storage ----------------------------------------------------------------------------------------------

def test_storage_account_takes_tls_12_https_and_entra_id_only(default_run):
    account = default_run.one("azure-native:storage:StorageAccount").inputs
    assert account["accountName"] == ACCOUNT and len(ACCOUNT) <= 24 and ACCOUNT.isalnum()
    assert account["enableHttpsTrafficOnly"] is True
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["allowBlobPublicAccess"] is False
    assert account["allowSharedKeyAccess"] is False
    assert account["defaultToOAuthAuthentication"] is True
    assert account["allowCrossTenantReplication"] is False
    assert account["encryption"] == {"keySource": "Microsoft.Storage", "requireInfrastructureEncryption": True,
                                     "services": {"blob": {"enabled": True, "keyType": "Account"}}}
    assert (account["kind"], account["sku"]) == ("StorageV2", {"name": "Standard_LRS"})


def test_models_container_is_private(default_run):
    container = default_run.one("azure-native:storage:BlobContainer").inputs
    assert container == {"accountName": ACCOUNT, "resourceGroupName": DATA_GROUP, "containerName": "models",
                         "publicAccess": "None"}


def test_old_versions_and_deleted_blobs_are_restorable_then_expire(default_run):
    service = default_run.one("azure-native:storage:BlobServiceProperties").inputs
    assert service["isVersioningEnabled"] is True
    assert service["deleteRetentionPolicy"] == {"enabled": True, "days": 7}
    assert service["containerDeleteRetentionPolicy"] == {"enabled": True, "days": 7}
    (rule,) = default_run.one("azure-native:storage:ManagementPolicy").inputs["policy"]["rules"]
    assert rule["enabled"] is True
    assert rule["definition"]["actions"] == {"version": {"delete": {"daysAfterCreationGreaterThan": 30}}}


def test_storage_has_its_own_resource_group_and_survives_destroy_by_default(default_run):
    assert default_run.one("azure-native:storage:StorageAccount").inputs["resourceGroupName"] == DATA_GROUP
    assert vm(default_run)["resourceGroupName"] == HOST_GROUP  # deleting the host's group leaves the models
    for typ in STORAGE_TYPES:
        name = "deepracer-data" if typ.endswith("ResourceGroup") else "models"
        assert default_run.opts(typ, name).retain_on_delete is True, typ
    assert not default_run.opts("azure-native:resources:ResourceGroup", "deepracer-host").retain_on_delete
    assert not default_run.opts("azure-native:compute:VirtualMachine", "host").retain_on_delete


def test_storage_goes_with_destroy_when_the_stack_says_so(custom_run):
    for typ in STORAGE_TYPES:
        name = "deepracer-data" if typ.endswith("ResourceGroup") else "models"
        assert not custom_run.opts(typ, name).retain_on_delete, typ


# -- identity and roles -------------------------------------------------------------------------------------

def test_vm_has_a_system_assigned_identity_and_no_password(default_run):
    inputs = vm(default_run)
    assert inputs["identity"] == {"type": "SystemAssigned"}
    linux = inputs["osProfile"]["linuxConfiguration"]
    assert linux["disablePasswordAuthentication"] is True
    assert "adminPassword" not in inputs["osProfile"]
    assert linux["ssh"] == {"publicKeys": [{"path": "/home/azureuser/.ssh/authorized_keys", "keyData": SSH_KEY}]}


def test_host_identity_gets_blob_data_contributor_on_the_models_container_only(default_run):
    host = named(default_run, "azure-native:authorization:RoleAssignment", "host-blob").inputs
    assert host["principalId"] == HOST_PRINCIPAL_ID
    assert host["principalType"] == "ServicePrincipal"
    assert host["roleDefinitionId"] == BLOB_DATA_CONTRIBUTOR
    assert host["scope"] == CONTAINER_SCOPE


def test_deployer_gets_the_same_role_on_the_same_container_to_upload_and_wait(default_run):
    deployer = named(default_run, "azure-native:authorization:RoleAssignment", "deployer-blob").inputs
    assert deployer["principalId"] == DEPLOYER_OBJECT_ID
    assert deployer["principalType"] == "User"  # signed in with `az login` (the Azure CLI's client id)
    assert deployer["roleDefinitionId"] == BLOB_DATA_CONTRIBUTOR
    assert deployer["scope"] == CONTAINER_SCOPE


def test_nothing_is_assigned_wider_than_the_container_or_the_vm(default_run, custom_run, cost_run):
    for run in (default_run, custom_run, cost_run):
        assignments = {a.name: a.inputs for a in run.of_type("azure-native:authorization:RoleAssignment")}
        assert sorted(assignments) == ["deployer-blob", "host-blob", "host-deallocate"]
        assert {assignments[n]["scope"].split("/blobServices/")[1] for n in ("deployer-blob", "host-blob")} == {
            "default/containers/models"}
        assert assignments["host-deallocate"]["scope"] == VM_RESOURCE_ID


def test_vm_may_deallocate_itself_and_do_nothing_else(default_run):
    """A custom role with the one action the idle auto-stop's ARM call needs (session/lifecycle/idle.py), assignable only
    in the host's resource group (Azure's narrowest assignable scope) and assigned on the VM alone."""
    definition = default_run.one("azure-native:authorization:RoleDefinition").inputs
    assert definition["permissions"] == [{"actions": ["Microsoft.Compute/virtualMachines/deallocate/action"],
                                          "notActions": [], "dataActions": [], "notDataActions": []}]
    group_scope = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{HOST_GROUP}"
    assert definition["assignableScopes"] == [group_scope]
    assert definition["scope"] == group_scope
    assert definition["roleType"] == "CustomRole"
    assert definition["roleDefinitionId"] == DEALLOCATE_ROLE_ID
    assert definition["roleName"] == f"deepracer-cloud VM self-deallocate ({HOST_GROUP})"  # unique in the tenant
    assignment = named(default_run, "azure-native:authorization:RoleAssignment", "host-deallocate").inputs
    assert assignment["principalId"] == HOST_PRINCIPAL_ID
    assert assignment["principalType"] == "ServicePrincipal"
    assert assignment["roleDefinitionId"] == (
        f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{DEALLOCATE_ROLE_ID}")
    assert assignment["scope"] == VM_RESOURCE_ID
    depends = default_run.opts("azure-native:authorization:RoleAssignment", "host-deallocate").depends_on
    assert "vm-self-deallocate" in {getattr(d, "_name", None) for d in depends}


def test_the_deallocate_action_is_the_one_the_host_calls():
    from infra.azure_roles import VM_DEALLOCATE_ACTION
    from session.lifecycle.power import DEALLOCATE_ACTION

    assert VM_DEALLOCATE_ACTION == DEALLOCATE_ACTION


# -- budget and notifications --------------------------------------------------------------------------------

def test_no_budget_or_alert_unless_asked(default_run, custom_run):
    for run in (default_run, custom_run):
        for typ in ("azure-native:consumption:Budget", "azure-native:monitor:ActionGroup",
                    "azure-native:monitor:ActivityLogAlert"):
            assert run.of_type(typ) == [], typ


def test_monthly_budget_covers_both_resource_groups_and_mails_at_80_100_and_forecast(cost_run):
    budget = cost_run.one("azure-native:consumption:Budget").inputs
    assert budget["scope"] == f"/subscriptions/{SUBSCRIPTION}"
    assert budget["budgetName"] == f"deepracer-cloud-{HOST_GROUP}"
    assert (budget["amount"], budget["category"], budget["timeGrain"]) == (60.0, "Cost", "Monthly")
    assert budget["filter"] == {"dimensions": {"name": "ResourceGroupName", "operator": "In",
                                               "values": [HOST_GROUP, DATA_GROUP]}}
    assert re.fullmatch(r"\d{4}-\d{2}-01T00:00:00Z", budget["timePeriod"]["startDate"])
    assert budget["notifications"] == {
        f"{kind}_GreaterThan_{percent}_Percent": {
            "enabled": True, "operator": "GreaterThan", "threshold": float(percent), "thresholdType": kind,
            "contactEmails": EMAILS}
        for kind, percent in (("Actual", 80), ("Actual", 100), ("Forecasted", 100))}
    # The first month stays the start: Azure refuses a past start outside the current month.
    assert cost_run.opts("azure-native:consumption:Budget", "monthly").ignore_changes == ["timePeriod"]


def test_budget_starts_on_the_first_of_the_current_month():
    from datetime import datetime, timezone

    from infra.azure_cost import budget_start

    assert budget_start(datetime(2026, 11, 25, 17, 30, tzinfo=timezone.utc)) == "2026-11-01T00:00:00Z"


def test_deallocation_and_eviction_of_the_vm_mail_the_alert_emails(cost_run):
    group = cost_run.one("azure-native:monitor:ActionGroup").inputs
    assert (group["location"], group["enabled"], group["groupShortName"]) == ("Global", True, "deepracer")
    assert group["resourceGroupName"] == HOST_GROUP
    assert group["emailReceivers"] == [
        {"name": f"email-{n}", "emailAddress": email, "useCommonAlertSchema": True}
        for n, email in enumerate(EMAILS, start=1)]
    alert = cost_run.one("azure-native:monitor:ActivityLogAlert").inputs
    assert alert["scopes"] == [VM_RESOURCE_ID]  # this VM's events only
    assert (alert["location"], alert["enabled"]) == ("Global", True)
    assert alert["condition"] == {"allOf": [
        {"field": "category", "equals": "Administrative"},
        {"field": "status", "equals": "Succeeded"},
        {"anyOf": [{"field": "operationName", "equals": "Microsoft.Compute/virtualMachines/deallocate/action"},
                   {"field": "operationName", "equals": "Microsoft.Compute/virtualMachines/evictSpotVM/action"}]},
    ]}
    assert alert["actions"] == {"actionGroups": [
        {"actionGroupId": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{HOST_GROUP}/notify"}]}


def test_cost_controls_reach_system_env_and_azure_gets_no_topic(cost_run):
    values = env_values(written_files(cost_run)["/etc/deepracer/system.env"]["content"])
    assert (values["DR_IDLE_STOP_MINUTES"], values["DR_POWER_OFF_AFTER_MAX_MINUTES"]) == ("45", "True")
    assert not any(key.startswith("DR_NOTIFY") for key in values)


def test_regular_priority_costs_the_regular_price(cost_run):
    estimate = cost_run.outputs["estimatedCostPerHour"]
    assert (estimate["priority"], estimate["vmUsd"], estimate["totalUsd"]) == ("regular", 0.752, 0.809)
    assert (estimate["regularTotalUsd"], estimate["spotTotalUsd"]) == (0.809, 0.283)
    assert cost_run.outputs["budget"] == f"deepracer-cloud-{HOST_GROUP}"
    assert vm(cost_run)["priority"] == "Regular"


# -- network ----------------------------------------------------------------------------------------------

def _rules(run, direction: str) -> list[dict]:
    rules = run.one("azure-native:network:NetworkSecurityGroup").inputs["securityRules"]
    return [r for r in rules if r["direction"] == direction]


def test_no_inbound_rule_by_default(default_run):
    assert _rules(default_run, "Inbound") == []


def test_ssh_only_from_configured_networks(custom_run):
    (rule,) = _rules(custom_run, "Inbound")
    assert (rule["access"], rule["protocol"], rule["destinationPortRange"]) == ("Allow", "Tcp", "22")
    assert rule["sourceAddressPrefixes"] == ["203.0.113.7/32", "198.51.100.0/24"]
    assert "sourceAddressPrefix" not in rule


def test_outbound_https_and_http_only(default_run):
    out = sorted(_rules(default_run, "Outbound"), key=lambda r: r["priority"])
    assert [(r["access"], r["protocol"], r["destinationPortRange"], r["destinationAddressPrefix"]) for r in out] == [
        ("Allow", "Tcp", "443", "Internet"), ("Allow", "Tcp", "80", "Internet"), ("Deny", "*", "*", "Internet")]


def test_subnet_and_nic_carry_the_nsg_and_the_public_ip_is_standard(default_run):
    nsg_id = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{HOST_GROUP}/host"
    assert default_run.one("azure-native:network:Subnet").inputs["networkSecurityGroup"] == {"id": nsg_id}
    nic = default_run.one("azure-native:network:NetworkInterface").inputs
    assert nic["networkSecurityGroup"] == {"id": nsg_id}
    (config,) = nic["ipConfigurations"]
    assert config["publicIPAddress"]["id"].endswith("/host")
    ip = default_run.one("azure-native:network:PublicIPAddress").inputs
    assert ip["sku"] == {"name": "Standard", "tier": "Regional"} and ip["publicIPAllocationMethod"] == "Static"
    vnet = default_run.one("azure-native:network:VirtualNetwork").inputs
    assert vnet["addressSpace"] == {"addressPrefixes": ["10.42.0.0/16"]}


# -- VM ---------------------------------------------------------------------------------------------------

def test_vm_is_a_t4_on_ubuntu_2404_with_a_premium_os_disk(default_run):
    inputs = vm(default_run)
    assert inputs["hardwareProfile"] == {"vmSize": "Standard_NC8as_T4_v3"}
    assert inputs["location"] == "eastus"
    assert inputs["storageProfile"]["imageReference"] == {
        "publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}
    assert inputs["storageProfile"]["osDisk"] == {
        "createOption": "FromImage", "diskSizeGB": 150, "caching": "ReadWrite",
        "managedDisk": {"storageAccountType": "Premium_LRS"}, "deleteOption": "Delete"}
    # Spot by default: deallocated on eviction, paying up to the regular price (-1).
    assert (inputs["priority"], inputs["evictionPolicy"], inputs["billingProfile"]) == (
        "Spot", "Deallocate", {"maxPrice": -1})


def test_regular_priority_is_the_fallback_and_buys_no_spot():
    inputs = vm(run_azure({"deepracer-cloud:priority": "regular"}))
    assert inputs["priority"] == "Regular"
    assert "evictionPolicy" not in inputs and "billingProfile" not in inputs


def test_driver_comes_from_the_first_boot_not_an_extension(default_run):
    """One boot to a ready host: see the comment on the VM in infra/azure.py and the gpu-runtime step."""
    assert default_run.of_type("azure-native:compute:VirtualMachineExtension") == []


def test_spot_deallocates_on_eviction_with_a_price_cap(custom_run):
    inputs = vm(custom_run)
    assert (inputs["priority"], inputs["evictionPolicy"]) == ("Spot", "Deallocate")
    assert inputs["billingProfile"] == {"maxPrice": 0.30}
    assert inputs["location"] == "westeurope"


def test_custom_settings_reach_the_vm(custom_run):
    inputs = vm(custom_run)
    assert inputs["storageProfile"]["osDisk"]["diskSizeGB"] == 200
    assert inputs["storageProfile"]["imageReference"]["sku"] == "22_04-lts-gen2"
    assert inputs["osProfile"]["adminUsername"] == "racer"
    assert inputs["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"][0]["path"] == "/home/racer/.ssh/authorized_keys"


def test_vm_is_not_replaced_by_new_custom_data_and_waits_for_its_package(default_run):
    opts = default_run.opts("azure-native:compute:VirtualMachine", "host")
    assert opts.ignore_changes == ["osProfile.customData"]
    # Spot <-> regular (the fallback) is a new VM, the old one deleted first: the NIC takes one VM at a time.
    assert opts.replace_on_changes == ["priority"] and opts.delete_before_replace is True
    assert any(getattr(d, "_name", None) == "session-package" for d in opts.depends_on)


def _trigger(run) -> dict:
    return run.opts("azure-native:compute:VirtualMachine", "host").replacement_trigger


def test_the_fallbacks_from_a_spot_vm_are_a_replacement_trigger(default_run, cost_run):
    """The README's Azure fallbacks: regular priority, or another size for a spot VM; each a new VM."""
    assert _trigger(default_run) == {"priority": "spot", "vmSize": "Standard_NC8as_T4_v3"}
    assert _trigger(cost_run) == {"priority": "regular", "vmSize": ""}
    other_size = run_azure({"deepracer-cloud:vmSize": "Standard_NC16as_T4_v3"})
    assert _trigger(other_size) == {"priority": "spot", "vmSize": "Standard_NC16as_T4_v3"}
    # A regular VM is resized in place: a size change is no new host there.
    regular_resized = run_azure({"deepracer-cloud:priority": "regular", "deepracer-cloud:vmSize": "Standard_NC16as_T4_v3"})
    assert _trigger(regular_resized) == _trigger(cost_run)


# -- custom data ------------------------------------------------------------------------------------------

def test_custom_data_is_valid_cloud_config_within_azures_limit(default_run, custom_run, tmp_path):
    for n, run in enumerate((default_run, custom_run)):
        text = custom_data(run)
        assert text.startswith("#cloud-config\n")
        assert len(text.encode()) <= AZURE_CUSTOM_DATA_LIMIT * 0.5  # Azure counts the decoded bytes
        path = tmp_path / f"custom-data-{n}"
        path.write_text(text)
        result = subprocess.run(["cloud-init", "schema", "-c", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_system_env_names_the_cloud_minio_and_the_blob_container(default_run):
    entry = written_files(default_run)["/etc/deepracer/system.env"]
    assert env_values(entry["content"]) == {
        "DR_CLOUD": "azure", "DR_AWS_APP_REGION": "us-east-1", "DR_LOCAL_S3_BUCKET": "models",
        "DR_UPLOAD_S3_BUCKET": "not-defined", "DR_SIMAPP_SOURCE": "awsdeepracercommunity/deepracer-simapp",
        "DR_SIMAPP_VERSION": "6.0.4-gpu", "DR_WORKERS": "3", "DR_IDLE_STOP_MINUTES": "30",
        "DR_POWER_OFF_AFTER_MAX_MINUTES": "False", "DR_LOCAL_ACCESS_KEY_ID": MINIO_ACCESS_KEY, "DR_LOCAL_SECRET_ACCESS_KEY": MINIO_SECRET_KEY,
        "DR_AZURE_STORAGE_ACCOUNT": ACCOUNT, "DR_AZURE_BLOB_CONTAINER": "models"}
    # MinIO's secret: root and the login user only, written once that user exists.
    assert (entry["permissions"], entry["owner"], entry["defer"]) == ("0640", "root:azureuser", True)


def test_bootstrap_env_points_at_the_blob_container(default_run, custom_run):
    base = f"https://{ACCOUNT}.blob.core.windows.net/models/"
    assert env_values(written_files(default_run)["/etc/deepracer/bootstrap.env"]["content"]) == {
        "DR_SESSION_PACKAGE_URL": base + "bootstrap/session.tar.gz", "DR_STATUS_URL": base + "hosts/",
        "DR_HOST_USER": "azureuser"}
    assert "DR_HOST_USER=racer\n" in written_files(custom_run)["/etc/deepracer/bootstrap.env"]["content"]
    assert "DR_WORKERS=2\n" in written_files(custom_run)["/etc/deepracer/system.env"]["content"]


def test_minio_credentials_are_random_and_secret(default_run):
    access = named(default_run, "random:index/randomString:RandomString", "minio-access-key").inputs
    secret = named(default_run, "random:index/randomPassword:RandomPassword", "minio-secret-key").inputs
    assert (access["length"], secret["length"]) == (20, 40)
    assert secret["special"] is False  # system.env values stay single shell words
    # The custom data that carries them is a secret in the Pulumi state, and nothing else is.
    assert {key: value for key, value in default_run.secret_inputs.items() if value} == {
        ("azure-native:compute:VirtualMachine", "host"): {"os_profile"}}


# -- package, readiness and outputs -------------------------------------------------------------------------

def _command(run, name: str) -> dict:
    return named(run, "command:local:Command", name).inputs


def test_session_package_is_uploaded_with_the_deployers_login(default_run):
    upload = _command(default_run, "session-package")
    assert " -m infra.blob_upload " in upload["create"]
    assert (f"--account-url https://{ACCOUNT}.blob.core.windows.net --container models "
            "--blob bootstrap/session.tar.gz --file ") in upload["create"]
    assert upload["create"].endswith("build/session.tar.gz")
    assert upload["triggers"] == [default_run.outputs["sessionPackageSha256"]]  # again after a code change
    depends = default_run.opts("command:local:Command", "session-package").depends_on
    assert any(getattr(d, "_name", None) == "deployer-blob" for d in depends)


def test_the_budget_reaches_the_host_in_a_blob_of_its_container_not_in_its_custom_data(default_run, cost_run):
    # The host reads it with its container role (session.storage.cost_settings); a new budget changes the command
    # line, which uploads it again, and leaves the VM alone.
    for run, budget in ((default_run, "null"), (cost_run, "60.0")):
        upload = _command(run, "cost-settings")
        assert upload["create"].endswith(
            f" -m infra.blob_upload --account-url https://{ACCOUNT}.blob.core.windows.net --container models "
            f"""--blob bootstrap/cost.json --text '{{"monthlyBudgetUsd": {budget}}}' --content-type application/json""")
        depends = run.opts("command:local:Command", "cost-settings").depends_on
        assert any(getattr(d, "_name", None) == "deployer-blob" for d in depends)
        assert "cost.json" not in custom_data(run) and "monthlyBudget" not in custom_data(run)


def test_up_waits_for_the_host_with_the_projects_waiter(default_run):
    wait = _command(default_run, "wait-ready")
    assert " -m infra.wait_ready " in wait["create"]
    assert (f"--account-url https://{ACCOUNT}.blob.core.windows.net --container models "
            f"--key hosts/{VM_ID}/bootstrap.json --resource-group {HOST_GROUP} --vm-name {VM_NAME} "
            "--timeout-minutes 45") in wait["create"]
    assert wait["triggers"] == [VM_ID]
    depends = default_run.opts("command:local:Command", "wait-ready").depends_on
    assert {getattr(d, "_name", None) for d in depends} >= {"host", "host-blob", "deployer-blob"}


def test_outputs_tell_the_user_where_things_are_and_what_they_cost(default_run, custom_run):
    out = default_run.outputs
    assert {k: out[k] for k in ("vmId", "vmName", "resourceGroup", "publicIp", "storageAccount", "container",
                                "location", "workers", "simapp", "ssh")} == {
        "vmId": VM_ID, "vmName": VM_NAME, "resourceGroup": HOST_GROUP, "publicIp": AZURE_PUBLIC_IP,
        "storageAccount": ACCOUNT, "container": "models", "location": "eastus", "workers": 3,
        "simapp": "awsdeepracercommunity/deepracer-simapp:6.0.4-gpu", "ssh": None}
    assert out["bootstrapLog"] == (f"az vm run-command invoke -g {HOST_GROUP} -n {VM_NAME} --command-id "
                                   "RunShellScript --scripts 'tail -n 100 /var/log/deepracer-bootstrap.log'")
    assert out["start"] == f"az vm start -g {HOST_GROUP} -n {VM_NAME}"
    assert out["budget"] is None
    assert out["estimatedCostPerHour"] == {
        "priority": "spot", "vmUsd": 0.226, "osDiskUsd": 0.052, "publicIpUsd": 0.005, "totalUsd": 0.283,
        "regularTotalUsd": 0.809, "spotTotalUsd": 0.283,
        "basis": "East US Linux pay-as-you-go list prices, 2026; other regions differ by up to ~30%; spot taken "
                 "as 30% of pay-as-you-go (it moves with demand)"}
    assert custom_run.outputs["ssh"] == f"ssh racer@{AZURE_PUBLIC_IP}"
    # the dashboard listens on the VM's 127.0.0.1: an SSH tunnel reaches it, and only where SSH is allowed
    assert out["dashboard"] is None
    assert custom_run.outputs["dashboard"] == f"ssh -N -L 8200:127.0.0.1:8200 racer@{AZURE_PUBLIC_IP}"
    assert custom_run.outputs["estimatedCostPerHour"]["vmUsd"] == 0.226  # 30% of 0.752, under the 0.30 cap
    assert custom_run.outputs["workers"] == 2


# -- bad settings -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    ({"deepracer-cloud:sshPublicKey": ""},
     "Pulumi.azure.yaml: deepracer-cloud:sshPublicKey: expected an OpenSSH RSA or Ed25519 public key (required on "
     "Azure: password login is off), got None"),
    ({"deepracer-cloud:priority": "low"},
     "Pulumi.azure.yaml: deepracer-cloud:priority: expected one of spot, regular, got 'low'"),
    ({"deepracer-cloud:sshAllowedCidrs": '["0.0.0.0/0"]'},
     "Pulumi.azure.yaml: deepracer-cloud:sshAllowedCidrs: expected your own address range (e.g. 203.0.113.7/32), "
     "not the whole internet, got '0.0.0.0/0'"),
    ({"deepracer-cloud:notifications": "true"},
     "Pulumi.azure.yaml: deepracer-cloud:alertEmails: expected at least one e-mail address when monthlyBudget or "
     "notifications is set, got []"),
])
def test_a_bad_setting_stops_the_program_naming_it(overrides, message):
    with pytest.raises(pulumi.RunError) as raised:
        run_program({"deepracer-cloud:sshPublicKey": SSH_KEY, **overrides}, stack="azure")
    assert str(raised.value) == message
