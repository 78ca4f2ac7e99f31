"""`airdock build` with images: the default hello-world through a registry mirror, end to end.

The bundle is built by the CLI from the fixture mirror and the token-auth
registry (standing in for a Docker Hub pull-through mirror), then its image
archive is loaded into a real dockerd and run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builder.cli import app
from tests.rig.testimage import message
from tests.rig.tools import run

pytestmark = pytest.mark.slow  # whole builds against real peers: the suite's last tier


def test_default_image_via_registry_mirror_loads_and_runs(
    tmp_path, mirror_args, mirror, auth_registry, dockerd
):
    result = CliRunner().invoke(
        app,
        [
            "build",
            *mirror_args,
            "--registry-mirror",
            auth_registry.url,
            "--json",
            "--output",
            str(tmp_path / "o"),
            "--cache-dir",
            str(tmp_path / "c"),
        ],
    )
    assert result.exit_code == 0, result.output
    folder = Path(json.loads(result.stdout)["bundle"])
    manifest = json.loads((folder / "manifest.json").read_text())
    [image] = manifest["images"]
    assert image["reference"] == "docker.io/library/hello-world:latest"
    assert image["repo_tag"] == "hello-world:latest" and image["platform"] == "linux/amd64"
    assert image["file"] == "images/hello-world_latest.tar"
    assert image["registry"].rstrip("/") == auth_registry.url.rstrip("/")
    run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=folder)
    assert "images/hello-world_latest.tar" in (folder / "SHA256SUMS").read_text()

    dockerd.docker("load", "-i", str(folder / image["file"]))
    image_id = dockerd.docker("image", "inspect", "-f", "{{.Id}}", "hello-world:latest")
    assert image_id.stdout.strip() == image["config_digest"]
    ran = dockerd.docker("run", "--rm", "--network", "none", "hello-world:latest")
    assert message("amd64") in ran.stdout
    dockerd.docker("rmi", "hello-world:latest")


def test_registry_user_needs_a_password(tmp_path, mirror_args):
    result = CliRunner().invoke(
        app,
        ["build", *mirror_args, "--registry-user", "me", "--cache-dir", str(tmp_path)],
        env={"AIRDOCK_REGISTRY_PASSWORD": ""},
    )
    assert result.exit_code == 2
    assert result.output.strip() == (
        "Error: --registry-user needs the password in the "
        "environment variable AIRDOCK_REGISTRY_PASSWORD"
    )
