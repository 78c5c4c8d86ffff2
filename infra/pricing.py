"""Hourly cost estimates shown in the stack outputs (list prices; the bill is the truth).

The price tables themselves are the session package's (session/core/pricing.py): the host estimates its own
training's cost from the same numbers, without them in its user data.
"""

from __future__ import annotations

from typing import Optional

from session.core.pricing import (  # the tables: the program and its tests use them from here
    AWS_CPU_INSTANCE_TYPES,
    AWS_INSTANCE_TYPES,
    AZURE_CPU_VM_SIZES,
    AZURE_PRICE_BASIS,
    AZURE_SPOT_FRACTION,
    AZURE_VM_SIZES,
    PRICE_BASIS,
    SPOT_FRACTION,
)

# A node's encrypted gp3 root volume: Ubuntu, Docker and the simulator image (~25 GB unpacked), logs.
NODE_DISK_GB = 64

GP3_USD_PER_GB_MONTH = 0.08
HOURS_PER_MONTH = 730


def _spot(on_demand: float, fraction: float, spot_max_price: Optional[str]) -> float:
    typical = on_demand * fraction
    return typical if spot_max_price is None else min(typical, float(spot_max_price))


def aws_hourly_estimate(instance_type: str, market: str, root_volume_gb: int,
                        spot_max_price: Optional[str] = None) -> dict:
    """The estimate as the stack output shows it: the chosen market's hour, and a training hour (instance and
    root volume) on both markets, so the fallback's price is in view. Unknown types get None for those parts."""
    known = AWS_INSTANCE_TYPES.get(instance_type)
    disk = root_volume_gb * GP3_USD_PER_GB_MONTH / HOURS_PER_MONTH
    if known is None:
        return {"market": market, "instanceUsd": None, "rootVolumeUsd": round(disk, 3), "totalUsd": None,
                "onDemandTotalUsd": None, "spotTotalUsd": None,
                "basis": f"no list price known for {instance_type}"}
    on_demand = known[1]
    spot = _spot(on_demand, SPOT_FRACTION, spot_max_price)
    instance = spot if market == "spot" else on_demand
    return {
        "market": market,
        "instanceUsd": round(instance, 3),
        "rootVolumeUsd": round(disk, 3),
        "totalUsd": round(instance + disk, 3),
        "onDemandTotalUsd": round(on_demand + disk, 3),
        "spotTotalUsd": round(spot + disk, 3),
        "basis": f"{PRICE_BASIS}; spot taken as {SPOT_FRACTION:.0%} of on-demand (it moves hourly)",
    }


def _with_nodes(estimate: dict, nodes: dict) -> dict:
    """The host's estimate plus the simulation nodes: totals include them, `hostTotalUsd` is the host alone."""
    node_usd, spot_node, regular_node = nodes.pop("_chosen"), nodes.pop("_spot"), nodes.pop("_regular")
    count = nodes["count"]

    def add(host: Optional[float], node: Optional[float]) -> Optional[float]:
        return None if host is None or node is None else round(host + count * node, 3)

    first, second = [k for k in estimate if k.endswith("TotalUsd")]  # on-demand/regular, then spot
    return {**estimate, "hostTotalUsd": estimate["totalUsd"], "totalUsd": add(estimate["totalUsd"], node_usd),
            first: add(estimate[first], regular_node), second: add(estimate[second], spot_node),
            "simNodes": {**nodes, "nodeUsd": None if node_usd is None else round(node_usd, 3),
                         "nodesUsd": None if node_usd is None else round(count * node_usd, 3)}}


def aws_nodes_estimate(estimate: dict, count: int, node_type: str, spot: bool) -> dict:
    """`estimate` (aws_hourly_estimate's) with `count` simulation nodes of `node_type` added; unchanged for 0."""
    if count == 0:
        return estimate
    known = AWS_CPU_INSTANCE_TYPES.get(node_type)
    disk = NODE_DISK_GB * GP3_USD_PER_GB_MONTH / HOURS_PER_MONTH
    on_demand = None if known is None else known[1] + disk
    spot_usd = None if known is None else known[1] * SPOT_FRACTION + disk
    return _with_nodes(estimate, {"count": count, "type": node_type, "market": "spot" if spot else "on-demand",
                                  "_chosen": spot_usd if spot else on_demand, "_spot": spot_usd,
                                  "_regular": on_demand})


# -- Azure ---------------------------------------------------------------------------------------------------

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
    """The estimate as the stack output shows it: the chosen priority's hour, and a training hour (VM, OS disk,
    public IP) at both priorities. Unknown sizes get None for those parts."""
    known = AZURE_VM_SIZES.get(vm_size)
    disk = azure_disk_usd_per_hour(os_disk_gb)
    fixed = disk + AZURE_PUBLIC_IP_USD_PER_HOUR
    if known is None:
        return {"priority": priority, "vmUsd": None, "osDiskUsd": round(disk, 3),
                "publicIpUsd": AZURE_PUBLIC_IP_USD_PER_HOUR, "totalUsd": None, "regularTotalUsd": None,
                "spotTotalUsd": None, "basis": f"no list price known for {vm_size}"}
    regular = known[1]
    spot = _spot(regular, AZURE_SPOT_FRACTION, spot_max_price)
    vm = spot if priority == "spot" else regular
    return {
        "priority": priority,
        "vmUsd": round(vm, 3),
        "osDiskUsd": round(disk, 3),
        "publicIpUsd": AZURE_PUBLIC_IP_USD_PER_HOUR,
        "totalUsd": round(vm + fixed, 3),
        "regularTotalUsd": round(regular + fixed, 3),
        "spotTotalUsd": round(spot + fixed, 3),
        "basis": f"{AZURE_PRICE_BASIS}; spot taken as {AZURE_SPOT_FRACTION:.0%} of pay-as-you-go (it moves with "
                 "demand)",
    }


def azure_nodes_estimate(estimate: dict, count: int, vm_size: str, spot: bool) -> dict:
    """`estimate` (azure_hourly_estimate's) with `count` simulation nodes (VM, Premium SSD, public IP) added."""
    if count == 0:
        return estimate
    known = AZURE_CPU_VM_SIZES.get(vm_size)
    fixed = azure_disk_usd_per_hour(NODE_DISK_GB) + AZURE_PUBLIC_IP_USD_PER_HOUR
    regular = None if known is None else known[1] + fixed
    spot_usd = None if known is None else known[1] * AZURE_SPOT_FRACTION + fixed
    return _with_nodes(estimate, {"count": count, "type": vm_size, "priority": "spot" if spot else "regular",
                                  "_chosen": spot_usd if spot else regular, "_spot": spot_usd, "_regular": regular})
