"""One manifest schema: the builder's model, the JSON Schema in docs/ and the installer agree.

The examples are a real manifest written by ``airdock build`` and variants of it that break
one rule each; the builder's reader (:class:`BundleManifest`), the JSON Schema generated from
it (``docs/manifest.schema.json``, checked with ``jsonschema``) and the installer's own
``validate_manifest`` must give the same verdict on every one.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import jsonschema
import pytest

from builder.manifest import BundleManifest, ManifestError, json_schema

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "docs" / "manifest.schema.json"


def test_the_schema_in_docs_is_generated_from_the_model():
    assert json.loads(SCHEMA.read_text()) == json_schema(), (
        "docs/manifest.schema.json is stale: regenerate it with "
        "python -c 'import json; from builder.manifest import json_schema; "
        "print(json.dumps(json_schema(), indent=2, sort_keys=True))'"
    )


def _installer():
    spec = importlib.util.spec_from_file_location("airdock_install_schema", ROOT / "installer" /
                                                  "airdock_install.py")  # fmt: skip
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _set(path: str, value):
    def edit(m: dict) -> None:
        *parents, last = path.split(".")
        node = m
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is KeyError:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return edit


VARIANTS = {
    # name: (edit, valid?)
    "as-built": (lambda m: None, True),
    "unknown-key-ignored": (_set("extra", {"future": True}), True),
    "format-version-string": (_set("format_version", "1"), False),
    "format-version-newer": (_set("format_version", 2), False),
    "packages-not-a-list": (_set("packages", {"a": 1}), False),
    "package-name-with-space": (_set("packages.0.name", "a b"), False),
    "package-file-traversal": (_set("packages.0.file", "../../etc/passwd"), False),
    "package-epoch-negative": (_set("packages.0.epoch", -1), False),
    "package-epoch-string": (_set("packages.0.epoch", "0"), False),
    "package-sha256-short": (_set("packages.0.sha256", "ab" * 31), False),
    "package-version-missing": (_set("packages.0.version", KeyError), False),
    "key-file-outside-keys": (_set("keys.0.file", "rpms/x.asc"), False),
    "target-arch-missing": (_set("target.arch", KeyError), False),
    # --baseline-from: optional, so the installer (which ignores it) and the model agree
    "host-baseline": (
        lambda m: m["target"].update(
            closure="host",
            baseline="host h1 with 300 packages",
            inventory={"sha256": "ab" * 32, "hostname": "h1.example", "packages": 300},
        ),
        True,
    ),  # fmt: skip
}


@pytest.fixture(scope="module")
def built_manifest(tmp_path_factory, fixture_mirror, mirror_server) -> dict:
    from tests.rig.fixtures_mirror import builder_mirror_args
    from tests.test_build import build

    tmp = tmp_path_factory.mktemp("schema")
    result = build(tmp, builder_mirror_args(fixture_mirror, mirror_server.url))
    assert result.exit_code == 0, result.output
    return json.loads((Path(json.loads(result.stdout)["bundle"]) / "manifest.json").read_text())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_builder_schema_and_installer_agree(built_manifest, variant):
    edit, valid = VARIANTS[variant]
    manifest = copy.deepcopy(built_manifest)
    edit(manifest)
    verdicts = {}
    try:
        BundleManifest.from_dict(manifest)
        verdicts["builder"] = True
    except ManifestError as exc:
        verdicts["builder"] = False
        assert "\n" not in str(exc)
    try:
        jsonschema.validate(manifest, json_schema())
        verdicts["schema"] = True
    except jsonschema.ValidationError:
        verdicts["schema"] = False
    ai = _installer()
    try:
        ai.check_format_version(manifest.get("format_version"))
        ai.validate_manifest(manifest)
        verdicts["installer"] = True
    except (ai.ManifestProblem, ai.Failure):
        verdicts["installer"] = False
    assert verdicts == {"builder": valid, "schema": valid, "installer": valid}


def test_the_builder_writes_what_it_reads(built_manifest):
    assert BundleManifest.from_dict(built_manifest).to_dict() == built_manifest
