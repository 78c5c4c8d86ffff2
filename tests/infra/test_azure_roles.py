"""Role ids and scopes on Azure (pure functions)."""

from __future__ import annotations

import pytest

from infra import azure_roles


def test_container_scope_is_the_containers_arm_id():
    assert azure_roles.container_scope("sub", "rg", "acct", "models") == (
        "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct/blobServices/default"
        "/containers/models")


def test_role_definition_is_storage_blob_data_contributor():
    assert azure_roles.role_definition_id("sub") == (
        "/subscriptions/sub/providers/Microsoft.Authorization/roleDefinitions/ba92f5b4-2d11-453d-a403-e96b0029c9fe")


@pytest.mark.parametrize("client_id, principal_type", [
    ("04b07795-8ddb-461a-bbee-02f9e1bf7b46", "User"),  # az login
    ("04B07795-8DDB-461A-BBEE-02F9E1BF7B46", "User"),
    ("1950a258-227b-4e31-a9cf-717495945fc2", "User"),  # Connect-AzAccount
    ("6f1e2d3c-0000-4000-8000-123456789abc", "ServicePrincipal"),  # a CI pipeline's app registration
])
def test_deployer_principal_type_follows_how_they_signed_in(client_id, principal_type):
    assert azure_roles.deployer_principal_type(client_id) == principal_type
