"""The one price table (session.core.pricing): what the host's cost card and the stack's estimate both read."""

from __future__ import annotations

import json

import pytest

from infra import pricing as infra_pricing
from session.core import pricing
from session.core.pricing import COST_SETTINGS_KEY, HourlyPrice, cost_settings_text, hourly_price


def test_an_aws_instance_costs_its_list_price_on_demand_and_the_spot_fraction_on_spot():
    assert hourly_price("aws", "g4dn.2xlarge", spot=False) == HourlyPrice(
        "aws", "g4dn.2xlarge", False, 0.752, "us-east-1 Linux list prices, 2026; other regions differ by up to ~30%; "
                                             "on-demand")
    spot = hourly_price("aws", "g4dn.2xlarge", spot=True)
    assert spot is not None and spot.usd == 0.3158 and spot.basis.endswith("spot taken as 42% of on-demand")
    assert hourly_price("aws", "c7i.2xlarge", spot=False).usd == 0.357  # a simulation node's type too


def test_an_azure_vm_costs_its_pay_as_you_go_price_or_the_spot_fraction():
    assert hourly_price("azure", "Standard_NC8as_T4_v3", spot=False).usd == 0.752
    spot = hourly_price("azure", "Standard_NC8as_T4_v3", spot=True)
    assert spot.usd == 0.2256 and spot.basis.endswith("spot taken as 30% of pay-as-you-go")


@pytest.mark.parametrize("cloud, machine", [("local", "g4dn.2xlarge"), ("aws", "p5.48xlarge"),
                                            ("azure", "g4dn.2xlarge"), ("aws", "Standard_NC8as_T4_v3")])
def test_no_price_is_made_up_for_a_local_machine_or_one_the_tables_do_not_know(cloud: str, machine: str):
    assert hourly_price(cloud, machine, spot=False) is None


def test_the_stacks_estimate_reads_the_same_table():
    assert infra_pricing.AWS_INSTANCE_TYPES is pricing.AWS_INSTANCE_TYPES
    assert infra_pricing.AZURE_VM_SIZES is pricing.AZURE_VM_SIZES
    assert infra_pricing.aws_hourly_estimate("g4dn.2xlarge", "on-demand", 0)["instanceUsd"] == \
        hourly_price("aws", "g4dn.2xlarge", spot=False).usd


def test_the_cost_settings_object_names_the_budget_or_none():
    assert COST_SETTINGS_KEY == "bootstrap/cost.json"
    assert json.loads(cost_settings_text(75.0)) == {"monthlyBudgetUsd": 75.0}
    assert json.loads(cost_settings_text(None)) == {"monthlyBudgetUsd": None}
