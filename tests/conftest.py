"""Shared pytest set-up: the rig's fixtures live in tests/rig/ and are registered here."""

pytest_plugins = [
    "tests.rig.fixtures_mirror",
    "tests.rig.fixtures_registry",
    "tests.rig.fixtures_sandbox",
]
