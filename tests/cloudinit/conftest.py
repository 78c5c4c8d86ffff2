"""Fixtures of this test package: Azure's stand-ins (tests/azure_fakes.py)."""

from tests.azure_fakes import azure_cert, azure_imds, azurite  # noqa: F401 - fixtures
