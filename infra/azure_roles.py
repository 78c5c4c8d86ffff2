"""Who may do what on Azure (pure: names in, ARM ids out): the data role on the models container, and the VM's
right to deallocate itself.

The VM's managed identity and the deployer each get Storage Blob Data Contributor on the one container that
holds the models, nothing on the account, the resource group or the subscription. The account refuses shared
keys, so these role assignments are the only way to its data.

The VM's identity also gets a custom role with one action, deallocate, assigned on the VM itself: the idle
auto-stop and a time limit stop billing the VM that way (an OS shutdown leaves an Azure VM allocated and billed).
"""

from __future__ import annotations

# Built-in role: read, write and delete blobs and list containers' contents (no management-plane rights).
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"


def role_definition_id(subscription_id: str, role: str = STORAGE_BLOB_DATA_CONTRIBUTOR) -> str:
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role}"


def container_scope(subscription_id: str, resource_group: str, account: str, container: str) -> str:
    """The ARM id of one blob container: the narrowest scope a storage data role can have short of a condition."""
    return (f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.Storage"
            f"/storageAccounts/{account}/blobServices/default/containers/{container}")


# Microsoft's public client apps a person signs in through: Azure CLI, Azure PowerShell, Visual Studio (Code).
_USER_SIGN_IN_APPS = frozenset({
    "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
    "1950a258-227b-4e31-a9cf-717495945fc2",
    "872cd9fa-d31f-45e0-9eab-6e460a02d1f1",
    "aebc6443-996d-45c2-90f0-388ff96faa56",
})


def deployer_principal_type(client_id: str) -> str:
    """User when the deployer signed in through a Microsoft sign-in app (`az login`), else ServicePrincipal.

    ARM refuses a role assignment whose principal type does not match the principal, and pulumi-azure-native
    would send User for a CI pipeline's service principal if none were given."""
    return "User" if client_id.lower() in _USER_SIGN_IN_APPS else "ServicePrincipal"


# The one thing the VM's identity may do to its own VM: deallocate it (idle auto-stop, a time limit;
# session/lifecycle/power.py).
# The host reads its resource id from IMDS, not from ARM, and does not poll the operation: no read is needed.
VM_DEALLOCATE_ACTION = "Microsoft.Compute/virtualMachines/deallocate/action"


def vm_deallocate_permissions() -> list[dict]:
    return [{"actions": [VM_DEALLOCATE_ACTION], "not_actions": [], "data_actions": [], "not_data_actions": []}]


def resource_group_scope(subscription_id: str, resource_group: str) -> str:
    """Custom roles can be made assignable no narrower than a resource group (Azure refuses a resource there);
    the assignment itself is on the VM."""
    return f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"


# Simulation nodes (docs/multi-node.md). Built-in: read a secret's value (and its metadata), nothing else.
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
# Built-in: read blobs (the deployer reads the nodes' status reports).
STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
# The one thing the host may do to the swarm token's secret: write a new value (which is how it rotates it).
KEY_VAULT_SET_SECRET_ACTION = "Microsoft.KeyVault/vaults/secrets/setSecret/action"


def swarm_token_write_permissions() -> list[dict]:
    return [{"actions": [], "not_actions": [], "data_actions": [KEY_VAULT_SET_SECRET_ACTION],
             "not_data_actions": []}]


def secret_scope(vault_id: str, secret_name: str) -> str:
    """The ARM id of one Key Vault secret: role assignments there reach that secret only."""
    return f"{vault_id}/secrets/{secret_name}"
