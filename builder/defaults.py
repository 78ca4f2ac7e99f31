"""Defaults the CLI shows in its help, kept apart so ``airdock --help`` imports nothing heavy.

``builder.plan`` and ``builder.download`` use the same values (a test holds them equal).
"""

from __future__ import annotations

DEFAULT_PACKAGES = (
    "docker-ce",
    "docker-ce-cli",
    "containerd.io",
    "docker-buildx-plugin",
    "docker-compose-plugin",
)
DEFAULT_IMAGES = ("hello-world:latest",)
DEFAULT_TIMEOUT = 60.0
