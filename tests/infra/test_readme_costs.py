"""The docs' tables of recommended types (docs/aws.md, docs/azure.md) say what infra/pricing.py and the workers rule
compute."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra import pricing
from infra.settings import (
    DEFAULT_AWS_INSTANCE_TYPE,
    DEFAULT_AZURE_VM_SIZE,
    DEFAULT_ROOT_VOLUME_GB,
    node_workers_for_vcpus,
    workers_for_vcpus,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _table(page: str, heading: str) -> list[list[str]]:
    text = (DOCS / page).read_text()
    section = text.split(f"\n{heading}\n", 1)[1]
    rows = []
    for line in section.splitlines():
        if rows and not line.startswith("|"):
            break
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows[1:]  # without the header


def _name(cell: str) -> str:
    return re.sub(r"\*\*|\(default\)", "", cell).strip()


@pytest.mark.parametrize("page, heading, known, default, estimate, columns", [
    ("aws.md", "## What it costs", pricing.AWS_INSTANCE_TYPES, DEFAULT_AWS_INSTANCE_TYPE,
     lambda name: pricing.aws_hourly_estimate(name, "spot", DEFAULT_ROOT_VOLUME_GB), ("onDemandTotalUsd",
                                                                                      "spotTotalUsd")),
    ("azure.md", "## What it costs on Azure", pricing.AZURE_VM_SIZES, DEFAULT_AZURE_VM_SIZE,
     lambda name: pricing.azure_hourly_estimate(name, "spot", DEFAULT_ROOT_VOLUME_GB), ("regularTotalUsd",
                                                                                        "spotTotalUsd")),
], ids=["aws", "azure"])
def test_cost_table_matches_the_pricing_module(page, heading, known, default, estimate, columns):
    rows = _table(page, heading)
    assert len(rows) >= 3
    assert [row[0] for row in rows if "(default)" in row[0]] == [f"**{default}** (default)"]
    multi = [row for row in rows if " + " in row[0]]
    assert len(multi) == 1, "a row with simulation nodes"
    for name_cell, _gpu, vcpus, workers, first, second in rows:
        if " + " in name_cell:
            _check_multi_node_row(page, name_cell, vcpus, workers, (first, second), known, estimate, columns)
            continue
        name = _name(name_cell)
        assert name in known, name
        assert int(vcpus) == known[name][0], name
        assert int(workers) == workers_for_vcpus(known[name][0]), name
        hour = estimate(name)
        assert (float(first), float(second)) == (round(hour[columns[0]], 2), round(hour[columns[1]], 2)), name


def _check_multi_node_row(page, name_cell, vcpus, workers, prices, known, estimate, columns):
    """`host + N × node (`simNodes: N`)`: vCPUs `h + N × n`, workers the host's plus N times the node's."""
    match = re.fullmatch(r"(\S+) \+ (\d+) × (\S+) \(`simNodes: (\d+)`\)", name_cell)
    assert match and match[2] == match[4], name_cell
    host, count, node = match[1], int(match[2]), match[3]
    cpu = pricing.AWS_CPU_INSTANCE_TYPES if page == "aws.md" else pricing.AZURE_CPU_VM_SIZES
    assert vcpus == f"{known[host][0]} + {count} × {cpu[node][0]}"
    assert workers == f"{workers_for_vcpus(known[host][0])} + {count} × {node_workers_for_vcpus(cpu[node][0])}"
    add = pricing.aws_nodes_estimate if page == "aws.md" else pricing.azure_nodes_estimate
    hour = add(estimate(host), count, node, True)
    assert (float(prices[0]), float(prices[1])) == (round(hour[columns[0]], 2), round(hour[columns[1]], 2))
