"""Hourly cost estimates shown in the stack outputs (list prices; the bill is the truth)."""

from __future__ import annotations

from typing import Optional

PRICE_BASIS = "us-east-1 Linux list prices, 2026; other regions differ by up to ~30%"

# On-demand USD per hour, us-east-1.
AWS_ON_DEMAND_USD = {
    "g4dn.xlarge": 0.526,
    "g4dn.2xlarge": 0.752,
    "g4dn.4xlarge": 1.204,
    "g4dn.8xlarge": 2.176,
    "g4dn.12xlarge": 3.912,
    "g4dn.16xlarge": 4.352,
    "g5.xlarge": 1.006,
    "g5.2xlarge": 1.212,
    "g5.4xlarge": 1.624,
    "g5.8xlarge": 2.448,
    "g6.xlarge": 0.805,
    "g6.2xlarge": 0.978,
    "g6.4xlarge": 1.323,
    "g6.8xlarge": 2.014,
}

# Spot prices move hourly; for these types they have sat around 40% of on-demand (g4dn.2xlarge ~$0.31).
SPOT_FRACTION = 0.42
GP3_USD_PER_GB_MONTH = 0.08
HOURS_PER_MONTH = 730


def aws_hourly_estimate(instance_type: str, market: str, root_volume_gb: int,
                        spot_max_price: Optional[str] = None) -> dict:
    """The estimate as the stack output shows it; unknown types get None for the instance part."""
    on_demand = AWS_ON_DEMAND_USD.get(instance_type)
    instance: Optional[float] = None
    if on_demand is not None:
        instance = on_demand if market == "on-demand" else on_demand * SPOT_FRACTION
        if market == "spot" and spot_max_price is not None:
            instance = min(instance, float(spot_max_price))
    disk = root_volume_gb * GP3_USD_PER_GB_MONTH / HOURS_PER_MONTH
    return {
        "instanceUsd": None if instance is None else round(instance, 3),
        "rootVolumeUsd": round(disk, 3),
        "totalUsd": None if instance is None else round(instance + disk, 3),
        "market": market,
        "basis": PRICE_BASIS if instance is not None else f"no list price known for {instance_type}",
    }
