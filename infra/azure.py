"""The Azure environment: network, storage account, managed identity and one GPU VM that boots into a training host."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_azure_native.authorization as authorization
import pulumi_azure_native.compute as compute
import pulumi_azure_native.consumption as consumption
import pulumi_azure_native.monitor as monitor
import pulumi_azure_native.network as network
import pulumi_azure_native.resources as resources
import pulumi_azure_native.storage as storage
import pulumi_command as command
import pulumi_random as random
from pulumi import Output, ResourceOptions

from infra import azure_blob, azure_cost, azure_roles, azure_sim_nodes, local_commands, pricing
from infra.bootstrap import HostConfig, azure_custom_data
from infra.settings import AzureSettings, node_workers_for_vcpus, workers_for_vcpus
from infra.sim_nodes import TOKEN_SECRET_NAME
from session.core.defaults import DASHBOARD_PORT
from session.core.pricing import COST_SETTINGS_KEY, cost_settings_text

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_BLOB = "bootstrap/session.tar.gz"
STATUS_PREFIX = "hosts/"
# One container holds everything the host keeps: models, custom files, the package and the hosts' status.
CONTAINER = "models"
# The S3 region the simulator and the session sign their requests for; MinIO's own default.
MINIO_REGION = "us-east-1"
# Docker networks take 172.17+/16 and DRfC's trainer network another private range: keep the VNet clear of both.
VNET_CIDR = "10.42.0.0/16"
SUBNET_CIDR = "10.42.1.0/24"
OLD_VERSION_DAYS = 30
SOFT_DELETE_DAYS = 7
# Canonical's Ubuntu LTS images (Gen2), plain: no NVIDIA driver, no Docker. The first boot adds both.
UBUNTU_IMAGES = {
    "24.04": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"},
    "22.04": {"publisher": "Canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts-gen2",
              "version": "latest"},
}


def security_rules(ssh_allowed_cidrs: tuple[str, ...], ssh_destination: str = "*") -> list[dict]:
    """The host's NSG: SSH in only from the configured networks (none by default), to `ssh_destination` (with
    simulation nodes, which share this NSG, the host's private address alone); out HTTPS and HTTP only."""
    rules: list[dict] = []
    if ssh_allowed_cidrs:
        rules.append({"name": "ssh-from-configured-networks", "priority": 100, "direction": "Inbound",
                      "access": "Allow", "protocol": "Tcp", "source_address_prefixes": list(ssh_allowed_cidrs),
                      "source_port_range": "*", "destination_address_prefix": ssh_destination,
                      "destination_port_range": "22", "description": "SSH from the networks in sshAllowedCidrs"})
    # Docker Hub, PyPI, NVIDIA and the storage account speak HTTPS, Ubuntu's mirrors HTTP; nothing else goes out.
    # (IMDS and Azure's platform address 168.63.129.16 are not subject to NSG rules.)
    for priority, port, name in ((100, "443", "https-out"), (110, "80", "http-out")):
        rules.append({"name": name, "priority": priority, "direction": "Outbound", "access": "Allow",
                      "protocol": "Tcp", "source_address_prefix": "*", "source_port_range": "*",
                      "destination_address_prefix": "Internet", "destination_port_range": port})
    rules.append({"name": "no-other-internet-out", "priority": 4000, "direction": "Outbound", "access": "Deny",
                  "protocol": "*", "source_address_prefix": "*", "source_port_range": "*",
                  "destination_address_prefix": "Internet", "destination_port_range": "*"})
    return rules


def host_replacement_trigger(settings: AzureSettings) -> dict:
    """The settings only a new VM applies: any change to them replaces the host (the README's fallbacks).

    Azure sets spot or regular at creation only; a spot VM that lost its capacity falls back to another size as
    a new VM, as on AWS, rather than a resize in place that needs the capacity it lacks. A regular VM is
    resized in place.
    """
    spot = settings.priority == "spot"
    return {"priority": settings.priority, "vmSize": settings.vm_size if spot else ""}


class AzureEnvironment(pulumi.ComponentResource):
    """Everything `pulumi up --stack azure` creates, as children of one component."""

    def __init__(self, name: str, settings: AzureSettings, session_archive: Path, session_digest: str,
                 opts: Optional[ResourceOptions] = None) -> None:
        super().__init__("deepracer:azure:Environment", name, None, opts)
        self._settings = settings
        s = settings
        self._tags = {"project": "deepracer-cloud", "stack": s.stack}
        self._client = authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))
        vcpus = pricing.azure_vcpus(s.vm_size)
        self.workers: int = s.workers if s.workers is not None else workers_for_vcpus(vcpus or 2)
        nodes = s.sim_nodes
        # Workers each simulation node carries (none without nodes); settings refuse a size this table lacks.
        node_vcpus = pricing.AZURE_CPU_VM_SIZES.get(nodes.node_type, (2, 0.0))[0]
        self.node_workers: int = (0 if not nodes.count else nodes.workers if nodes.workers is not None
                                  else node_workers_for_vcpus(node_vcpus))
        self.swarm: Optional[azure_sim_nodes.AzureSwarm] = None

        self._storage()
        self.account_url: Output[str] = self.account.name.apply(azure_blob.account_url)
        deployer_role = self._role("deployer-blob", self._client.object_id,
                                   self._client.client_id.apply(azure_roles.deployer_principal_type))
        package = self._upload_package(session_archive, session_digest, deployer_role)
        self.cost_settings = self._upload_cost_settings(deployer_role)
        nic = self._network()
        self.vm = self._vm(nic, package)
        # After the VM: a system-assigned identity exists only with its VM. The host retries its first reads
        # until the assignment reaches the storage service (cloudinit/scripts/host-storage.py).
        self.host_role = self._role("host-blob", self.vm.identity.apply(lambda i: i.principal_id), "ServicePrincipal")
        self.deallocate_role = self._self_deallocate()
        self.sim_nodes: Optional[azure_sim_nodes.AzureSimNodes] = None
        if self.swarm is not None:
            self.swarm.grant_host(self, self.vm)
            self.sim_nodes = azure_sim_nodes.AzureSimNodes(self, self.swarm, self.subnet, self.vm,
                                                          self.deallocate_role_id)
        self.budget = self._budget()
        self._notifications()
        self.ready = self._wait_until_ready(deployer_role)

        self.vm_id = self.vm.vm_id
        self.vm_name = self.vm.name
        self.resource_group_name = self.host_group.name
        self.public_ip = self.ip.ip_address
        self.storage_account = self.account.name
        self.container_name = self.container.name
        self.ssh_command: Output[Optional[str]] = (
            Output.concat("ssh ", s.admin_username, "@", self.ip.ip_address) if s.ssh_allowed_cidrs
            else Output.from_input(None))
        # `deepracer dashboard` listens on the VM's 127.0.0.1 only: an SSH tunnel reaches it (no port opens).
        self.dashboard_command: Output[Optional[str]] = (
            Output.concat("ssh -N -L ", str(DASHBOARD_PORT), ":127.0.0.1:", str(DASHBOARD_PORT), " ",
                          s.admin_username, "@", self.ip.ip_address) if s.ssh_allowed_cidrs
            else Output.from_input(None))
        self.log_command = Output.concat(
            "az vm run-command invoke -g ", self.host_group.name, " -n ", self.vm.name,
            " --command-id RunShellScript --scripts 'tail -n 100 /var/log/deepracer-bootstrap.log'")
        # A deallocated VM (spot eviction, idle auto-stop, time limit) starts again only when asked.
        # (With simulation nodes, theirs too: they deallocate themselves when the host's swarm is gone.)
        vm_names = [self.vm.name, *([vm.name for vm in self.sim_nodes.vms] if self.sim_nodes is not None else [])]
        self.start_command = Output.all(self.host_group.name, *vm_names).apply(
            lambda a: " && ".join(f"az vm start -g {a[0]} -n {vm}" for vm in a[1:]))
        self.budget_name: Output[Optional[str]] = (
            self.budget.name if self.budget is not None else Output.from_input(None))
        self.hourly_estimate = pricing.azure_nodes_estimate(
            pricing.azure_hourly_estimate(s.vm_size, s.priority, s.os_disk_gb, s.spot_max_price),
            nodes.count, nodes.node_type, nodes.spot)
        self.sim_nodes_output: Optional[Output[dict]] = None
        if self.sim_nodes is not None and self.swarm is not None:
            self.sim_nodes_output = Output.all([vm.name for vm in self.sim_nodes.vms], self.swarm.vault.name).apply(
                lambda a: {"count": nodes.count, "size": nodes.node_type, "vmNames": a[0],
                           "workersPerNode": self.node_workers,
                           "totalWorkers": self.workers + nodes.count * self.node_workers,
                           "tokenSecret": f"https://{a[1]}.vault.azure.net/secrets/{TOKEN_SECRET_NAME}"})
        self.register_outputs({
            "vmId": self.vm_id, "publicIp": self.public_ip, "storageAccount": self.storage_account,
            "container": self.container_name, "ready": self.ready.stdout,
        })

    # -- storage -------------------------------------------------------------------------------------------

    def _storage(self) -> None:
        s = self._settings
        keep = s.keep_storage_on_destroy
        # The storage lives in a resource group of its own: deleting the host's group deletes everything in
        # it, so a kept account must not be in there. Kept: Pulumi forgets group, account and container on
        # destroy and Azure keeps them, models included. Not kept: they go with the rest.
        kept = ResourceOptions(parent=self, retain_on_delete=keep)
        self.data_group = resources.ResourceGroup("deepracer-data", location=s.location, tags=self._tags, opts=kept)
        # Storage account names are global, 3-24 lowercase letters and digits: a stable random suffix.
        suffix = random.RandomString("storage-suffix", length=12, special=False, upper=False, numeric=True,
                                     opts=ResourceOptions(parent=self))
        self.account = storage.StorageAccount(
            "models",
            account_name=Output.concat("deepracer", suffix.result),
            resource_group_name=self.data_group.name,
            location=s.location,
            kind="StorageV2",
            sku={"name": "Standard_LRS"},
            access_tier="Hot",
            enable_https_traffic_only=True,
            minimum_tls_version="TLS1_2",
            allow_blob_public_access=False,
            # Entra ID only: no account key can read the models, the role assignments below are the only way in.
            allow_shared_key_access=False,
            default_to_o_auth_authentication=True,
            allow_cross_tenant_replication=False,
            encryption={"key_source": "Microsoft.Storage", "require_infrastructure_encryption": True,
                        "services": {"blob": {"enabled": True, "key_type": "Account"}}},
            tags=self._tags,
            opts=kept)
        after_account = ResourceOptions(parent=self, retain_on_delete=keep, depends_on=[self.account])
        storage.BlobServiceProperties(
            "models", account_name=self.account.name, resource_group_name=self.data_group.name,
            blob_services_name="default",
            # A checkpoint overwritten or deleted by mistake can be restored for a while, then stops costing money.
            is_versioning_enabled=True,
            delete_retention_policy={"enabled": True, "days": SOFT_DELETE_DAYS},
            container_delete_retention_policy={"enabled": True, "days": SOFT_DELETE_DAYS},
            opts=after_account)
        storage.ManagementPolicy(
            "models", account_name=self.account.name, resource_group_name=self.data_group.name,
            management_policy_name="default",
            policy={"rules": [{
                "name": "expire-old-versions", "enabled": True, "type": "Lifecycle",
                "definition": {"filters": {"blob_types": ["blockBlob"]}, "actions": {
                    "version": {"delete": {"days_after_creation_greater_than": OLD_VERSION_DAYS}}}},
            }]},
            opts=after_account)
        self.container = storage.BlobContainer(
            "models", account_name=self.account.name, resource_group_name=self.data_group.name,
            container_name=CONTAINER, public_access="None", opts=after_account)
        self.container_scope = Output.all(self._client.subscription_id, self.data_group.name, self.account.name,
                                          self.container.name).apply(lambda a: azure_roles.container_scope(*a))

    def _role(self, name: str, principal_id: Output[str], principal_type: pulumi.Input[str]
              ) -> authorization.RoleAssignment:
        """Storage Blob Data Contributor on the models container, and nothing wider."""
        return authorization.RoleAssignment(
            name,
            principal_id=principal_id,
            principal_type=principal_type,
            role_definition_id=self._client.subscription_id.apply(azure_roles.role_definition_id),
            scope=self.container_scope,
            description=f"deepracer-cloud {self._settings.stack}: models container ({name})",
            opts=ResourceOptions(parent=self, depends_on=[self.container]))

    def _upload_package(self, archive: Path, digest: str, deployer_role: authorization.RoleAssignment
                        ) -> command.local.Command:
        # pulumi-azure-native's Blob resource signs with the account key, which this account refuses; the
        # deployer's own login uploads it instead, again whenever the package's content changes.
        create = local_commands.python_module(
            REPO_ROOT, "infra.blob_upload", "--account-url", self.account_url, "--container", CONTAINER,
            "--blob", PACKAGE_BLOB, "--file", archive.relative_to(REPO_ROOT).as_posix())
        return command.local.Command(
            "session-package", create=create, dir=local_commands.checkout_dir(REPO_ROOT), triggers=[digest],
            opts=ResourceOptions(parent=self, depends_on=[deployer_role, self.container]))

    def _upload_cost_settings(self, deployer_role: authorization.RoleAssignment) -> command.local.Command:
        """The monthly budget for the host's cost card, in a blob the host reads with its container role; never in
        the user data (a change there replaces the host). The text is in the command line: a new budget reruns it."""
        create = local_commands.python_module(
            REPO_ROOT, "infra.blob_upload", "--account-url", self.account_url, "--container", CONTAINER,
            "--blob", COST_SETTINGS_KEY, "--text", cost_settings_text(self._settings.cost.monthly_budget_usd).strip(),
            "--content-type", "application/json")
        return command.local.Command(
            "cost-settings", create=create, dir=local_commands.checkout_dir(REPO_ROOT),
            opts=ResourceOptions(parent=self, depends_on=[deployer_role, self.container]))

    # -- network -------------------------------------------------------------------------------------------

    def _network(self) -> network.NetworkInterface:
        s = self._settings
        child = ResourceOptions(parent=self)
        self.host_group = resources.ResourceGroup("deepracer-host", location=s.location, tags=self._tags,
                                                  opts=child)
        group = self.host_group.name
        # Simulation nodes (docs/multi-node.md): the swarm's group and token secret exist before the host, whose NIC
        # joins the one and whose first boot writes the other.
        rules: list = security_rules(s.ssh_allowed_cidrs)
        if s.sim_nodes.count:
            self.swarm = azure_sim_nodes.AzureSwarm(self)
            # The nodes' NICs carry this NSG too: SSH goes to the host's fixed address only (an NSG sees the private
            # address, after the public IP's translation), so sshAllowedCidrs opens nothing on the nodes.
            rules = [*security_rules(s.ssh_allowed_cidrs, f"{azure_sim_nodes.HOST_PRIVATE_IP}/32"),
                     *azure_sim_nodes.swarm_security_rules(self.swarm.group.id)]
        self.nsg = network.NetworkSecurityGroup(
            "host", resource_group_name=group, location=s.location, security_rules=rules, tags=self._tags, opts=child)
        vnet = network.VirtualNetwork(
            "vnet", resource_group_name=group, location=s.location,
            address_space={"address_prefixes": [VNET_CIDR]}, tags=self._tags, opts=child)
        self.subnet = subnet = network.Subnet(
            "host", resource_group_name=group, virtual_network_name=vnet.name, address_prefix=SUBNET_CIDR,
            network_security_group={"id": self.nsg.id}, opts=child)
        # A public IP without NAT: the host pulls ~10 GB of images; nothing comes in unless the NSG allows SSH.
        self.ip = network.PublicIPAddress(
            "host", resource_group_name=group, location=s.location, sku={"name": "Standard", "tier": "Regional"},
            public_ip_allocation_method="Static", public_ip_address_version="IPv4", tags=self._tags, opts=child)
        return network.NetworkInterface(
            "host", resource_group_name=group, location=s.location,
            ip_configurations=[{"name": "primary", "subnet": {"id": subnet.id}, "primary": True,
                                "private_ip_allocation_method": "Dynamic", "public_ip_address": {"id": self.ip.id}}
                               if self.swarm is None else
                               # With nodes: a fixed address (their user data names it) in the swarm's group.
                               {"name": "primary", "subnet": {"id": subnet.id}, "primary": True,
                                "private_ip_allocation_method": "Static",
                                "private_ip_address": azure_sim_nodes.HOST_PRIVATE_IP,
                                "public_ip_address": {"id": self.ip.id},
                                "application_security_groups": [{"id": self.swarm.group.id}]}],
            # The NIC carries the same rules as the subnet: a NIC moved elsewhere stays closed.
            network_security_group={"id": self.nsg.id},
            tags=self._tags, opts=child)

    # -- VM ------------------------------------------------------------------------------------------------

    def _vm(self, nic: network.NetworkInterface, package: command.local.Command) -> compute.VirtualMachine:
        s = self._settings
        access_key = random.RandomString("minio-access-key", length=20, special=False, lower=False,
                                         opts=ResourceOptions(parent=self))
        secret_key = random.RandomPassword("minio-secret-key", length=40, special=False,
                                           opts=ResourceOptions(parent=self))
        # MinIO's secret goes in customData, which Azure never returns through its API nor serves on IMDS (unlike
        # userData); on the VM only root reads it; in the Pulumi state it is a secret (said here rather than left
        # to the provider's marking of the password).
        secret_url = self.swarm.secret_url if self.swarm is not None else None
        parts = Output.all(self.account.name, access_key.result, secret_key.result, secret_url)
        custom_data: Output[str] = Output.secret(parts.apply(
            lambda a: azure_custom_data(HostConfig(
                cloud="azure", region=MINIO_REGION, bucket=CONTAINER, simapp_image=s.simapp, workers=self.workers,
                session_package_url=f"{azure_blob.account_url(a[0])}/{CONTAINER}/{PACKAGE_BLOB}",
                status_url=f"{azure_blob.account_url(a[0])}/{CONTAINER}/{STATUS_PREFIX}",
                host_user=s.admin_username, minio_access_key=a[1], minio_secret_key=a[2],
                azure_storage_account=a[0], azure_blob_container=CONTAINER,
                idle_stop_minutes=s.cost.idle_stop_minutes,
                power_off_after_max_minutes=s.cost.power_off_after_max_minutes, dashboard=s.dashboard,
                sim_nodes=s.sim_nodes.count, sim_node_workers=self.node_workers, swarm_token_secret_url=a[3]))))
        spot = s.priority == "spot"
        return compute.VirtualMachine(
            "host",
            resource_group_name=self.host_group.name,
            location=s.location,
            hardware_profile={"vm_size": s.vm_size},
            identity={"type": "SystemAssigned"},
            # The NVIDIA driver comes from the first boot (cloudinit/scripts/bootstrap.sh, step gpu-runtime), not
            # from the NvidiaGpuDriverLinux extension: the extension installs NVIDIA's driver beside cloud-init,
            # outside its log, and reboots the VM to load it, cutting the first boot short. Canonical's signed,
            # prebuilt kernel modules for the image's own kernel load at once (modprobe), so the host is ready
            # after one boot, and a failure reaches `pulumi up` with the step and the log like every other step.
            storage_profile={
                "image_reference": UBUNTU_IMAGES[s.ubuntu_version],
                "os_disk": {"create_option": "FromImage", "disk_size_gb": s.os_disk_gb, "caching": "ReadWrite",
                            "managed_disk": {"storage_account_type": "Premium_LRS"}, "delete_option": "Delete"},
            },
            os_profile={
                "computer_name": "deepracer",
                "admin_username": s.admin_username,
                "custom_data": custom_data,
                "linux_configuration": {
                    "disable_password_authentication": True,
                    "provision_vm_agent": True,
                    "ssh": {"public_keys": [{"path": f"/home/{s.admin_username}/.ssh/authorized_keys",
                                             "key_data": s.ssh_public_key}]},
                },
            },
            network_profile={"network_interfaces": [{"id": nic.id, "primary": True}]},
            # The serial log (`az vm boot-diagnostics get-boot-log`) shows a first boot that never reported.
            diagnostics_profile={"boot_diagnostics": {"enabled": True}},
            priority="Spot" if spot else "Regular",
            # Deallocate: an eviction stops the VM and keeps its OS disk; `az vm start` resumes it when capacity
            # returns. The temp disk (/mnt) comes back empty: MinIO's data there is a cache of the blob container.
            eviction_policy="Deallocate" if spot else None,
            billing_profile={"max_price": float(s.spot_max_price) if s.spot_max_price else -1} if spot else None,
            tags=self._tags,
            opts=ResourceOptions(
                parent=self,
                # The host must find its package on first boot (and, with nodes, the secret it writes).
                depends_on=[package, *([self.swarm.secret] if self.swarm is not None else [])],
                # customData only runs on first boot and Azure cannot change it: a new rendering must not replace
                # a training host. `pulumi up --replace` rebuilds it on purpose.
                ignore_changes=["osProfile.customData"],
                # Azure sets spot or regular at creation only: the fallback to regular is a new VM. Its NIC can
                # carry one VM at a time, so the old VM goes first (its OS disk with it; the models stay in the
                # blob container).
                replace_on_changes=["priority"],
                replacement_trigger=host_replacement_trigger(s),
                delete_before_replace=True,
            ),
        )

    # -- cost controls ---------------------------------------------------------------------------------------

    def _self_deallocate(self) -> authorization.RoleAssignment:
        """The VM may deallocate itself and do nothing else with itself or anything else."""
        s = self._settings
        group_scope = Output.all(self._client.subscription_id, self.host_group.name).apply(
            lambda a: azure_roles.resource_group_scope(*a))
        role_id = random.RandomUuid("deallocate-role-id", opts=ResourceOptions(parent=self))
        self.deallocate_role_id: Output[str] = role_id.result
        definition = authorization.RoleDefinition(
            "vm-self-deallocate",
            role_definition_id=role_id.result,
            # Custom role names are unique in the whole tenant: the host group's random suffix makes it so.
            role_name=Output.concat("deepracer-cloud VM self-deallocate (", self.host_group.name, ")"),
            description=f"deepracer-cloud {s.stack}: lets the training VM deallocate itself when idle",
            role_type="CustomRole",
            permissions=azure_roles.vm_deallocate_permissions(),
            scope=group_scope,
            assignable_scopes=[group_scope],
            opts=ResourceOptions(parent=self))
        self.deallocate_definition = definition
        return authorization.RoleAssignment(
            "host-deallocate",
            principal_id=self.vm.identity.apply(lambda i: i.principal_id),
            principal_type="ServicePrincipal",
            role_definition_id=Output.all(self._client.subscription_id, role_id.result).apply(
                lambda a: azure_roles.role_definition_id(*a)),
            scope=self.vm.id,
            description=f"deepracer-cloud {s.stack}: the VM deallocates itself (idle auto-stop, time limit)",
            opts=ResourceOptions(parent=self, depends_on=[definition]))

    def _budget(self) -> Optional[consumption.Budget]:
        cost = self._settings.cost
        if cost.monthly_budget_usd is None:
            return None
        return consumption.Budget(
            "monthly",
            budget_name=Output.concat("deepracer-cloud-", self.host_group.name),
            scope=Output.concat("/subscriptions/", self._client.subscription_id),
            amount=cost.monthly_budget_usd,
            category="Cost",
            time_grain="Monthly",
            time_period={"start_date": azure_cost.budget_start(datetime.now(timezone.utc))},
            filter=Output.all(self.host_group.name, self.data_group.name).apply(
                lambda groups: azure_cost.budget_filter(list(groups))),
            notifications=azure_cost.budget_notifications(cost.alert_emails),
            # The start is the month of the first `pulumi up`; a later month must not move it (Azure refuses a
            # past start outside the current month).
            opts=ResourceOptions(parent=self, ignore_changes=["timePeriod"]))

    def _notifications(self) -> None:
        cost = self._settings.cost
        if not cost.notifications:
            return
        child = ResourceOptions(parent=self)
        group = monitor.ActionGroup(
            "notify", resource_group_name=self.host_group.name, location="Global", enabled=True,
            group_short_name=azure_cost.ACTION_GROUP_SHORT_NAME,
            email_receivers=azure_cost.email_receivers(cost.alert_emails), tags=self._tags, opts=child)
        monitor.ActivityLogAlert(
            "vm-stopped", resource_group_name=self.host_group.name, location="Global", enabled=True,
            description=f"deepracer-cloud {self._settings.stack}: the training VM was deallocated or evicted",
            scopes=[self.vm.id], condition=azure_cost.vm_stopped_condition(),
            actions={"action_groups": [{"action_group_id": group.id}]}, tags=self._tags, opts=child)

    def _wait_until_ready(self, deployer_role: authorization.RoleAssignment) -> command.local.Command:
        s = self._settings
        create = local_commands.python_module(
            REPO_ROOT, "infra.wait_ready", "--account-url", self.account_url, "--container", CONTAINER,
            "--key", Output.concat(STATUS_PREFIX, self.vm.vm_id, "/bootstrap.json"),
            "--resource-group", self.host_group.name, "--vm-name", self.vm.name,
            "--timeout-minutes", str(s.ready_timeout_minutes))
        return command.local.Command(
            "wait-ready", create=create, dir=local_commands.checkout_dir(REPO_ROOT),
            # Wait again only for a new host; an existing ready host stays ready.
            triggers=[self.vm.vm_id],
            opts=ResourceOptions(parent=self, depends_on=[self.vm, self.host_role, deployer_role]))
