"""Shared pytest set-up: the rig's fixtures live in tests/rig/ and are registered here.

Order of the suite: a broken promise should fail ``pytest -x`` within seconds, so tests run
in three tiers (stable within each, so files keep their own order):

1. pure tests: no rig fixture at all (parsers, digests, signatures over bytes, tar order,
   drift comparisons, split naming);
2. tests on the signed fixture mirror and its HTTP server only (built once, cached on disk);
3. ``slow``: end-to-end runs against real peers (dnf roots, registries, dockerd, sandbox
   hosts, whole builds), marked per module or recognised by the fixtures they use.

Everything runs in ``make test``; ``pytest -m "not slow"`` runs tiers 1 and 2 alone.
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.rig.fixtures_mirror",
    "tests.rig.fixtures_registry",
    "tests.rig.fixtures_sandbox",
]

# Fixtures that start real peers: a test that uses one is end-to-end (tier 3).
SLOW_FIXTURES = {
    "baseline_root",
    "empty_root",
    "sandbox",
    "sandbox_templates",
    "installer_bundles",
    "image_bundles",
    "token_server",
    "auth_registry",
    "plain_registry",
    "front_proxy",
    "dockerd",
    "fixture_mirror_multiarch",
}
# Fixtures of tier 2: the fixture mirror and its server.
MIRROR_FIXTURES = {"fixture_mirror", "mirror_server", "mirror", "mirror_args"}


def _tier(item: pytest.Item) -> int:
    names = set(getattr(item, "fixturenames", ()))
    if item.get_closest_marker("slow") or names & SLOW_FIXTURES:
        return 3
    return 2 if names & MIRROR_FIXTURES else 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _tier(item) == 3 and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
    items.sort(key=_tier)
