"""docs/el7-facts.md is the project's reference for the facts the code relies on.

Pure and fast: every citation of it in builder/, tests/ and installer/ names the file where it
lives, and the fingerprints and mirror presets it documents are the ones the code pins.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

from builder.mirrors import PRESETS
from builder.rpmverify import FETCHED_KEYS, VENDOR_KEYS

REPO = Path(__file__).resolve().parent.parent
FACTS = "docs/el7-facts.md"
CITED_DIRS = ("builder", "tests", "installer")
# A mention of the facts file not preceded by "docs/" (spelt so this line is not one).
BARE_CITATION = re.compile(r"(?<!docs/)el7[-]facts")
FINGERPRINT = re.compile(r"\b[0-9A-F]{40}\b")


def facts_text() -> str:
    return (REPO / FACTS).read_text(encoding="utf-8")


def section(heading: str) -> str:
    """The text under ``heading`` (a whole Markdown heading line) up to the next heading."""
    lines = facts_text().splitlines()
    assert heading in lines, f"{FACTS} has no heading {heading!r}"
    body = []
    for line in lines[lines.index(heading) + 1 :]:
        if line.startswith("#"):
            break
        body.append(line)
    return "\n".join(body)


def table_rows(text: str) -> list[list[str]]:
    """Cells of the Markdown table rows whose first cell is code (`` `name` ``)."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("| `")
    ]


def code(cell: str) -> str:
    match = re.fullmatch(r"`([^`]+)`", cell)
    assert match, f"expected a single code span, got {cell!r}"
    return match.group(1)


def source_files():
    for top in CITED_DIRS:
        # os.walk does not follow symlinks: builder/installer is ../installer, read once.
        for dirpath, dirnames, filenames in os.walk(REPO / top):
            dirnames[:] = [d for d in dirnames if d not in ("__pycache__", ".cache")]
            for name in filenames:
                path = Path(dirpath) / name
                if path.suffix in (".py", ".sh", ".txt", ".md"):
                    yield path


def test_facts_file_exists():
    assert (REPO / FACTS).is_file()


def test_every_citation_names_docs_el7_facts():
    bare = []
    cited = 0
    for path in source_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            cited += line.count("docs/el7-facts.md")
            if BARE_CITATION.search(line):
                bare.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not bare, "cite docs/el7-facts.md, not a file outside the repository:\n" + "\n".join(
        bare
    )
    assert cited, "no citation of docs/el7-facts.md found; is the scan looking in the right place?"


def test_cited_anchors_exist():
    headings = {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in facts_text().splitlines()
        if line.startswith("#")
    }
    anchors = {
        anchor
        for path in source_files()
        for anchor in re.findall(r"docs/el7-facts\.md#([\w-]+)", path.read_text(encoding="utf-8"))
    }
    assert anchors <= headings, f"anchors without a heading: {sorted(anchors - headings)}"


def load_installer():
    spec = importlib.util.spec_from_file_location(
        "airdock_install_docs", REPO / "installer" / "airdock_install.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def documented_keys() -> dict[str, str]:
    """Key file name -> fingerprint, from the table under "## Signing keys"."""
    keys = {}
    for row in table_rows(section("## Signing keys")):
        name = code(row[0].split()[0])
        (fingerprint,) = FINGERPRINT.findall(row[1])
        keys[name] = fingerprint
    return keys


def test_fingerprints_match_builder_pins():
    documented = documented_keys()
    pinned = dict(VENDOR_KEYS)
    pinned.update({name: fingerprint for name, fingerprint in FETCHED_KEYS.values()})
    assert documented == pinned


def test_fingerprints_match_installer_pins():
    installer = load_installer()
    assert set(documented_keys().values()) == set(installer.VENDOR_KEYS)


def test_no_other_fingerprint_in_signing_keys_section():
    assert set(FINGERPRINT.findall(section("## Signing keys"))) == set(documented_keys().values())


@pytest.fixture(scope="module")
def documented_presets() -> dict[str, tuple[str, str]]:
    rows = table_rows(section("### Mirror presets"))
    presets = {code(row[0]): (code(row[1]), code(row[2])) for row in rows}
    assert len(presets) == len(rows), "a preset is listed twice"
    return presets


def test_preset_table_matches_code(documented_presets):
    in_code = {name: (m.docker_ce, m.os) for name, m in PRESETS.items()}
    assert documented_presets == in_code
