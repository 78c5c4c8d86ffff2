"""Test tiers: each test is marked by what it needs (the markers are registered in pyproject.toml), so that
`scripts/test --fast` (pytest's `-m "not docker and not azurite and not shared_data"`) can run the ones that
need none of it.

- `docker`: a dockerd of the tests' own (root, docker.io): a test that uses, directly or through other fixtures,
  one of DOCKER_FIXTURES;
- `azurite`: Azurite (npm, in .cache/node): a test that uses one of AZURITE_FIXTURES;
- `shared_data`: the DeepRacer tracks and logs in ../shared/data: every test of a module that imports
  tests.shared_data.

The marks come from the fixtures a test uses (`item.fixturenames`, their closure), so a new test cannot forget
them. A new fixture that starts a dockerd or Azurite of its own goes in the sets below; if it is forgotten,
`require` fails the first test that starts one unmarked, rather than letting the fast tier start it.
"""

from __future__ import annotations

import sys
from typing import Iterable, Optional

import pytest

DOCKER_FIXTURES = {"docker_engine", "gpu_host", "two_node_swarm"}
AZURITE_FIXTURES = {"azurite"}
FAST = "not docker and not azurite and not shared_data"

_running: Optional[pytest.Item] = None


def mark(items: Iterable[pytest.Item]) -> None:
    shared = sys.modules.get("tests.shared_data")  # imported only by the modules that read the shared data
    data = {id(value) for value in (shared, shared.SHARED_DATA, shared.TRACKS, shared.LOGS)} if shared else set()
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & DOCKER_FIXTURES:
            item.add_marker(pytest.mark.docker)
        if fixtures & AZURITE_FIXTURES:
            item.add_marker(pytest.mark.azurite)
        module = getattr(item, "module", None)
        if data and module is not None and any(id(value) in data for value in vars(module).values()):
            item.add_marker(pytest.mark.shared_data)


def running(item: Optional[pytest.Item]) -> None:
    global _running
    _running = item


def require(marker: str, what: str) -> None:
    """Called where a dockerd or Azurite starts: the test whose setup starts it must carry the marker."""
    if _running is not None and _running.get_closest_marker(marker) is None:
        pytest.fail(f"{_running.nodeid} starts {what} but is not marked `{marker}`: add the fixture that starts it "
                    "to the fixture sets in tests/tiers.py")
