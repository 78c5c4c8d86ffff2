"""Azure simulation nodes (docs/multi-node.md): CPU VMs in the host's subnet that join its swarm.

Created only with `simNodes` > 0. What they add to the stack:

- an **application security group** `swarm` holding the host's and the nodes' NICs; the NSG allows the swarm ports
  from that group to that group, and denies them from anything else in the virtual network (Azure's default rules
  would allow the whole VNet); nothing new is open to the internet;
- a **Key Vault** (RBAC only) with one secret, the worker join token, holding a placeholder: the host may set it (a
  custom role with the one data action `setSecret`, on that secret), each node may read it (*Key Vault Secrets
  User* on that secret);
- a **status container** `node-status` where the nodes report their first boot (*Storage Blob Data Contributor* on
  that container only: the workers reach the models through the host's MinIO, not the storage account), read by
  the deployer's readiness wait;
- per node: a public IP (for its way out: Docker Hub, Ubuntu's mirrors; no inbound rule), a NIC in the NSG and the
  group, a VM from Canonical's plain Ubuntu (Docker from the distribution, no GPU driver) with its own identity,
  its right to deallocate itself (the watchdog, when the host's swarm is gone), and a readiness wait.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi
import pulumi_azure_native.authorization as authorization
import pulumi_azure_native.compute as compute
import pulumi_azure_native.keyvault as keyvault
import pulumi_azure_native.network as network
import pulumi_azure_native.storage as storage
import pulumi_command as command
import pulumi_random as random
from pulumi import Output, ResourceOptions

from infra import azure_blob, azure_roles, local_commands, sim_nodes
from infra.pricing import NODE_DISK_GB
from infra.sim_nodes import NodeConfig, azure_node_custom_data

if TYPE_CHECKING:
    from infra.azure import AzureEnvironment

STATUS_CONTAINER = "node-status"
# The host's fixed address with nodes: the nodes' user data names it, and a dynamic address may change when the
# host is deallocated. Azure's first usable address in 10.42.1.0/24.
HOST_PRIVATE_IP = "10.42.1.4"
SWARM_RULE_PRIORITY = 200


def swarm_security_rules(group_id: pulumi.Input[str]) -> list[dict]:
    """The swarm ports from members to members; then the same ports denied from anything else."""
    members = [{"id": group_id}]
    rules: list[dict] = [
        {"name": f"swarm-{port}-{protocol}", "priority": SWARM_RULE_PRIORITY + n, "direction": "Inbound",
         "access": "Allow", "protocol": protocol.capitalize(), "source_application_security_groups": members,
         "source_port_range": "*", "destination_application_security_groups": members,
         "destination_port_range": str(port), "description": f"swarm {port}/{protocol} between members"}
        for n, (port, protocol) in enumerate(sim_nodes.SWARM_PORTS)]
    rules.append({"name": "swarm-from-others", "priority": SWARM_RULE_PRIORITY + 50, "direction": "Inbound",
                  "access": "Deny", "protocol": "*", "source_address_prefix": "*", "source_port_range": "*",
                  "destination_address_prefix": "*",
                  "destination_port_ranges": sorted({str(port) for port, _ in sim_nodes.SWARM_PORTS}),
                  "description": "the swarm's ports from anything that is not a member"})
    return rules


class AzureSwarm:
    """What the host needs before it exists: the group its NIC joins and the token's secret it writes."""

    def __init__(self, env: AzureEnvironment) -> None:
        s = env._settings
        child = ResourceOptions(parent=env)
        group = env.host_group.name
        self.group = network.ApplicationSecurityGroup("swarm", resource_group_name=group, location=s.location,
                                                      tags=env._tags, opts=child)
        suffix = random.RandomString("vault-suffix", length=12, special=False, upper=False, numeric=True, opts=child)
        self.vault = keyvault.Vault(
            "swarm", resource_group_name=group, location=s.location, vault_name=Output.concat("drswarm", suffix.result),
            properties={"tenant_id": env._client.tenant_id, "sku": {"family": "A", "name": "standard"},
                        # Role assignments only (no access policies): the two below are all there is.
                        "enable_rbac_authorization": True, "soft_delete_retention_in_days": 7,
                        "enabled_for_deployment": False, "enabled_for_template_deployment": False,
                        "enabled_for_disk_encryption": False},
            tags=env._tags, opts=child)
        self.secret = keyvault.Secret(
            "swarm-token", resource_group_name=group, vault_name=self.vault.name,
            secret_name=sim_nodes.TOKEN_SECRET_NAME, properties={"value": sim_nodes.TOKEN_PLACEHOLDER},
            # The host writes the token; the stack never puts its placeholder back.
            opts=ResourceOptions(parent=env, ignore_changes=["properties.value"]))
        self.secret_url: Output[str] = Output.concat("https://", self.vault.name, ".vault.azure.net/secrets/",
                                                      sim_nodes.TOKEN_SECRET_NAME)
        self.secret_scope: Output[str] = self.vault.id.apply(
            lambda vault_id: azure_roles.secret_scope(vault_id, sim_nodes.TOKEN_SECRET_NAME))

    def grant_host(self, env: AzureEnvironment, host: compute.VirtualMachine) -> authorization.RoleAssignment:
        """The host may set the secret's value: a custom role with that one data action, on that one secret."""
        s = env._settings
        group_scope = Output.all(env._client.subscription_id, env.host_group.name).apply(
            lambda a: azure_roles.resource_group_scope(*a))
        role_id = random.RandomUuid("swarm-token-role-id", opts=ResourceOptions(parent=env))
        definition = authorization.RoleDefinition(
            "swarm-token-writer", role_definition_id=role_id.result,
            role_name=Output.concat("deepracer-cloud swarm token writer (", env.host_group.name, ")"),
            description=f"deepracer-cloud {s.stack}: the host writes the swarm's worker join token",
            role_type="CustomRole", permissions=azure_roles.swarm_token_write_permissions(), scope=group_scope,
            assignable_scopes=[group_scope], opts=ResourceOptions(parent=env))
        return authorization.RoleAssignment(
            "host-swarm-token", principal_id=host.identity.apply(lambda i: i.principal_id),
            principal_type="ServicePrincipal",
            role_definition_id=Output.all(env._client.subscription_id, role_id.result).apply(
                lambda a: azure_roles.role_definition_id(*a)),
            scope=self.secret_scope, description=f"deepracer-cloud {s.stack}: the host writes the swarm token",
            opts=ResourceOptions(parent=env, depends_on=[definition, self.secret]))


class AzureSimNodes:
    """The nodes and their waits (children of the environment component)."""

    def __init__(self, env: AzureEnvironment, swarm: AzureSwarm, subnet: network.Subnet,
                 host: compute.VirtualMachine, deallocate_role_id: Output[str]) -> None:
        s = env._settings
        n = s.sim_nodes
        child = ResourceOptions(parent=env)
        self.workers_per_node = env.node_workers
        self.status_container = storage.BlobContainer(
            "node-status", account_name=env.account.name, resource_group_name=env.data_group.name,
            container_name=STATUS_CONTAINER, public_access="None", opts=ResourceOptions(parent=env,
                                                                                        depends_on=[env.account]))
        status_scope = Output.all(env._client.subscription_id, env.data_group.name, env.account.name,
                                  self.status_container.name).apply(lambda a: azure_roles.container_scope(*a))
        deployer_reader = authorization.RoleAssignment(
            "deployer-node-status", principal_id=env._client.object_id,
            principal_type=env._client.client_id.apply(azure_roles.deployer_principal_type),
            role_definition_id=env._client.subscription_id.apply(
                lambda sub: azure_roles.role_definition_id(sub, azure_roles.STORAGE_BLOB_DATA_READER)),
            scope=status_scope, description=f"deepracer-cloud {s.stack}: the deployer reads the nodes' reports",
            opts=child)
        custom_data = Output.all(env.account.name, swarm.secret_url).apply(lambda a: azure_node_custom_data(NodeConfig(
            cloud="azure", simapp_image=s.simapp, manager_address=HOST_PRIVATE_IP, workers=self.workers_per_node,
            status_url=f"{azure_blob.account_url(a[0])}/{STATUS_CONTAINER}/hosts/", token_secret_url=a[1])))
        self.vms: list[compute.VirtualMachine] = []
        self.waits: list[command.local.Command] = []
        for index in range(1, n.count + 1):
            name = f"sim-node-{index}"
            ip = network.PublicIPAddress(
                name, resource_group_name=env.host_group.name, location=s.location,
                sku={"name": "Standard", "tier": "Regional"}, public_ip_allocation_method="Static",
                public_ip_address_version="IPv4", tags=env._tags, opts=child)
            nic = network.NetworkInterface(
                name, resource_group_name=env.host_group.name, location=s.location,
                ip_configurations=[{"name": "primary", "subnet": {"id": subnet.id}, "primary": True,
                                    "private_ip_allocation_method": "Dynamic", "public_ip_address": {"id": ip.id},
                                    "application_security_groups": [{"id": swarm.group.id}]}],
                network_security_group={"id": env.nsg.id}, tags=env._tags, opts=child)
            vm = compute.VirtualMachine(
                name, resource_group_name=env.host_group.name, location=s.location,
                hardware_profile={"vm_size": n.node_type}, identity={"type": "SystemAssigned"},
                storage_profile={
                    "image_reference": _ubuntu_image(s.ubuntu_version),
                    "os_disk": {"create_option": "FromImage", "disk_size_gb": NODE_DISK_GB, "caching": "ReadWrite",
                                "managed_disk": {"storage_account_type": "Premium_LRS"}, "delete_option": "Delete"}},
                os_profile={"computer_name": name, "admin_username": s.admin_username, "custom_data": custom_data,
                            "linux_configuration": {
                                "disable_password_authentication": True, "provision_vm_agent": True,
                                "ssh": {"public_keys": [{"path": f"/home/{s.admin_username}/.ssh/authorized_keys",
                                                         "key_data": s.ssh_public_key}]}}},
                network_profile={"network_interfaces": [{"id": nic.id, "primary": True}]},
                diagnostics_profile={"boot_diagnostics": {"enabled": True}},
                priority="Spot" if n.spot else "Regular", eviction_policy="Deallocate" if n.spot else None,
                billing_profile={"max_price": -1} if n.spot else None, tags=env._tags,
                opts=ResourceOptions(parent=env, depends_on=[swarm.secret], ignore_changes=["osProfile.customData"],
                                     # A new host is a new swarm: the nodes are rebuilt to join it.
                                     replacement_trigger=host.vm_id,
                                     replace_on_changes=["priority"], delete_before_replace=True))
            principal = vm.identity.apply(lambda i: i.principal_id)
            roles = [
                self._assign(env, f"{name}-swarm-token", principal, azure_roles.KEY_VAULT_SECRETS_USER,
                             swarm.secret_scope, "reads the swarm token"),
                self._assign(env, f"{name}-status", principal, azure_roles.STORAGE_BLOB_DATA_CONTRIBUTOR,
                             status_scope, "reports its first boot"),
                # Its own deallocation only (the watchdog), with the host's one-action custom role.
                authorization.RoleAssignment(
                    f"{name}-deallocate", principal_id=principal, principal_type="ServicePrincipal",
                    role_definition_id=Output.all(env._client.subscription_id, deallocate_role_id).apply(
                        lambda a: azure_roles.role_definition_id(*a)),
                    scope=vm.id, description=f"deepracer-cloud {s.stack}: {name} deallocates itself",
                    opts=ResourceOptions(parent=env, depends_on=[env.deallocate_definition])),
            ]
            self.vms.append(vm)
            self.waits.append(self._wait_until_ready(env, name, vm, [deployer_reader, *roles]))

    @staticmethod
    def _assign(env: AzureEnvironment, name: str, principal: Output[str], role: str, scope: Output[str],
                what: str) -> authorization.RoleAssignment:
        return authorization.RoleAssignment(
            name, principal_id=principal, principal_type="ServicePrincipal",
            role_definition_id=env._client.subscription_id.apply(lambda sub: azure_roles.role_definition_id(sub, role)),
            scope=scope, description=f"deepracer-cloud {env._settings.stack}: a simulation node {what}",
            opts=ResourceOptions(parent=env))

    @staticmethod
    def _wait_until_ready(env: AzureEnvironment, name: str, vm: compute.VirtualMachine,
                          roles: list[authorization.RoleAssignment]) -> command.local.Command:
        from infra.azure import REPO_ROOT, STATUS_PREFIX

        s = env._settings
        create = local_commands.python_module(
            REPO_ROOT, "infra.wait_ready", "--account-url", env.account_url, "--container", STATUS_CONTAINER,
            "--key", Output.concat(STATUS_PREFIX, vm.vm_id, "/bootstrap.json"),
            "--resource-group", env.host_group.name, "--vm-name", vm.name,
            "--timeout-minutes", str(s.ready_timeout_minutes + sim_nodes.TOKEN_WAIT_MINUTES))
        return command.local.Command(
            f"{name}-wait-ready", create=create, dir=local_commands.checkout_dir(REPO_ROOT), triggers=[vm.vm_id],
            opts=ResourceOptions(parent=env, depends_on=[vm, *roles]))


def _ubuntu_image(version: str) -> dict:
    from infra.azure import UBUNTU_IMAGES

    return UBUNTU_IMAGES[version]
