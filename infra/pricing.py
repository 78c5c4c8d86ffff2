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


# -- Azure ---------------------------------------------------------------------------------------------------

AZURE_PRICE_BASIS = "East US Linux pay-as-you-go list prices, 2026; other regions differ by up to ~30%"

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
# Azure spot prices move with demand and differ more between regions than AWS's; NC T4 v3 spot has mostly sat
# between 20% and 40% of pay-as-you-go. The estimate takes the middle.
AZURE_SPOT_FRACTION = 0.3
# Premium SSD (LRS) is billed by tier, the smallest tier that holds the disk: (GiB, USD per month).
AZURE_PREMIUM_SSD_TIERS = ((32, 5.28), (64, 10.21), (128, 19.71), (256, 38.01), (512, 73.22), (1024, 135.17),
                           (2048, 259.05), (4095, 495.57))
AZURE_PUBLIC_IP_USD_PER_HOUR = 0.005  # Standard static IPv4, charged while it exists


def azure_vcpus(vm_size: str) -> Optional[int]:
    known = AZURE_VM_SIZES.get(vm_size)
    return None if known is None else known[0]


def azure_disk_usd_per_hour(os_disk_gb: int) -> float:
    for size, usd in AZURE_PREMIUM_SSD_TIERS:
        if os_disk_gb <= size:
            return usd / HOURS_PER_MONTH
    return AZURE_PREMIUM_SSD_TIERS[-1][1] / HOURS_PER_MONTH


def azure_hourly_estimate(vm_size: str, priority: str, os_disk_gb: int,
                          spot_max_price: Optional[str] = None) -> dict:
    """The estimate as the stack output shows it; unknown sizes get None for the VM part."""
    known = AZURE_VM_SIZES.get(vm_size)
    vm: Optional[float] = None
    if known is not None:
        vm = known[1] if priority == "regular" else known[1] * AZURE_SPOT_FRACTION
        if priority == "spot" and spot_max_price is not None:
            vm = min(vm, float(spot_max_price))
    disk = azure_disk_usd_per_hour(os_disk_gb)
    fixed = disk + AZURE_PUBLIC_IP_USD_PER_HOUR
    return {
        "vmUsd": None if vm is None else round(vm, 3),
        "osDiskUsd": round(disk, 3),
        "publicIpUsd": AZURE_PUBLIC_IP_USD_PER_HOUR,
        "totalUsd": None if vm is None else round(vm + fixed, 3),
        "priority": priority,
        "basis": AZURE_PRICE_BASIS if vm is not None else f"no list price known for {vm_size}",
    }
