"""The docs' tables of recommended types (docs/aws.md, docs/azure.md) say what infra/pricing.py and the workers rule
compute."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra import pricing
from infra.settings import DEFAULT_AWS_INSTANCE_TYPE, DEFAULT_AZURE_VM_SIZE, DEFAULT_ROOT_VOLUME_GB, workers_for_vcpus

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
    for name_cell, _gpu, vcpus, workers, first, second in rows:
        name = _name(name_cell)
        assert name in known, name
        assert int(vcpus) == known[name][0], name
        assert int(workers) == workers_for_vcpus(known[name][0]), name
        hour = estimate(name)
        assert (float(first), float(second)) == (round(hour[columns[0]], 2), round(hour[columns[1]], 2)), name
