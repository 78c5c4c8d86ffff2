"""List prices of the machines the stack builds, one table for both halves: the Pulumi program's cost estimate
(infra/pricing.py adds disks, IPs and simulation nodes) and the host's own estimate of what its training costs
(the dashboard's cost card: the instance type or VM size and its market, as the metadata service tells them).

Pure data and lookups; list prices only (the bill is the truth). A type or size not in the tables has no price:
None, never a guess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

PRICE_BASIS = "us-east-1 Linux list prices, 2026; other regions differ by up to ~30%"
AZURE_PRICE_BASIS = "East US Linux pay-as-you-go list prices, 2026; other regions differ by up to ~30%"

# Instance type -> (vCPUs, on-demand USD per hour, us-east-1). The vCPUs are for the README's table of workers
# per type; the program itself asks EC2 for them.
AWS_INSTANCE_TYPES: dict[str, tuple[int, float]] = {
    "g4dn.xlarge": (4, 0.526),
    "g4dn.2xlarge": (8, 0.752),
    "g4dn.4xlarge": (16, 1.204),
    "g4dn.8xlarge": (32, 2.176),
    "g4dn.12xlarge": (48, 3.912),
    "g4dn.16xlarge": (64, 4.352),
    "g5.xlarge": (4, 1.006),
    "g5.2xlarge": (8, 1.212),
    "g5.4xlarge": (16, 1.624),
    "g5.8xlarge": (32, 2.448),
    "g6.xlarge": (4, 0.805),
    "g6.2xlarge": (8, 0.978),
    "g6.4xlarge": (16, 1.323),
    "g6.8xlarge": (32, 2.014),
}

# CPU types for simulation nodes (settings.SimNodes): (vCPUs, on-demand USD per hour, us-east-1).
AWS_CPU_INSTANCE_TYPES: dict[str, tuple[int, float]] = {
    "c7i.xlarge": (4, 0.1785),
    "c7i.2xlarge": (8, 0.357),
    "c7i.4xlarge": (16, 0.714),
    "c6i.2xlarge": (8, 0.34),
    "c6i.4xlarge": (16, 0.68),
    "m7i.2xlarge": (8, 0.4032),
}

# Spot prices move hourly; for these types they have sat around 40% of on-demand (g4dn.2xlarge ~$0.31).
SPOT_FRACTION = 0.42

# VM size -> (vCPUs, pay-as-you-go USD per hour, East US). The vCPUs also give the default number of workers,
# because Azure has no lookup of a size that works before the VM exists.
AZURE_VM_SIZES: dict[str, tuple[int, float]] = {
    "Standard_NC4as_T4_v3": (4, 0.526),
    "Standard_NC8as_T4_v3": (8, 0.752),
    "Standard_NC16as_T4_v3": (16, 1.204),
    "Standard_NC64as_T4_v3": (64, 4.352),
    "Standard_NV36ads_A10_v5": (36, 3.20),
    "Standard_NC24ads_A100_v4": (24, 3.673),
}
# CPU sizes for simulation nodes: (vCPUs, pay-as-you-go USD per hour, East US).
AZURE_CPU_VM_SIZES: dict[str, tuple[int, float]] = {
    "Standard_F4s_v2": (4, 0.169),
    "Standard_F8s_v2": (8, 0.338),
    "Standard_F16s_v2": (16, 0.677),
    "Standard_D8s_v5": (8, 0.384),
    "Standard_D16s_v5": (16, 0.768),
}
# Azure spot prices move with demand and differ more between regions than AWS's; NC T4 v3 spot has mostly sat
# between 20% and 40% of pay-as-you-go. The estimate takes the middle.
AZURE_SPOT_FRACTION = 0.3

# The stack's cost settings for the host (the monthly budget), as a small JSON object in the bucket (AWS) or the
# models container (Azure) the host already reads: changing them rewrites this object, never the host's user data.
COST_SETTINGS_KEY = "bootstrap/cost.json"
MONTHLY_BUDGET_FIELD = "monthlyBudgetUsd"


def cost_settings_text(monthly_budget_usd: Optional[float]) -> str:
    """The cost settings object as the stack writes it (and session.storage.cost_settings reads it)."""
    return json.dumps({MONTHLY_BUDGET_FIELD: monthly_budget_usd}) + "\n"


@dataclass(frozen=True)
class HourlyPrice:
    """What one hour of this machine costs by the tables: the machine, its market, USD, and on what basis."""

    cloud: str  # aws | azure
    machine: str  # instance type or VM size
    spot: bool
    usd: float
    basis: str


def hourly_price(cloud: str, machine: str, spot: bool) -> Optional[HourlyPrice]:
    """The list price of one hour of `machine` (GPU or CPU) on `cloud`, spot taken as the tables' fraction of
    on-demand; None for a cloud or machine the tables do not know (a local machine has no price)."""
    if cloud == "aws":
        known = AWS_INSTANCE_TYPES.get(machine) or AWS_CPU_INSTANCE_TYPES.get(machine)
        fraction, basis, market = SPOT_FRACTION, PRICE_BASIS, "on-demand"
    elif cloud == "azure":
        known = AZURE_VM_SIZES.get(machine) or AZURE_CPU_VM_SIZES.get(machine)
        fraction, basis, market = AZURE_SPOT_FRACTION, AZURE_PRICE_BASIS, "pay-as-you-go"
    else:
        return None
    if known is None:
        return None
    usd = known[1] * fraction if spot else known[1]
    said = f"spot taken as {fraction:.0%} of {market}" if spot else market
    return HourlyPrice(cloud, machine, spot, round(usd, 4), f"{basis}; {said}")
