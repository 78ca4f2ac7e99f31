"""README's option tables and the commands' --help say the same (sqlite-utils' test_docs.py is
the model): every option in a table exists in --help with the metavar the table shows, and
every --help option is in the table, for build, release, versions, diff, verify, split and the
installer (whose --help is run by Python, as on the target)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from builder.cli import app

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
INSTALLER = REPO / "installer" / "airdock_install.py"
# The sentence introducing each table (its start) -> the command.
TABLES = {
    "build": "`airdock build` options:",
    "release": "`airdock release` options:",
    "versions": "`airdock versions` options:",
    "diff": "`airdock diff OLD NEW`",
    "verify": "`airdock verify PATH`",
    "split": "`airdock split TARBALL`",
    "installer": "Installer options:",
}


def table_after(intro: str) -> dict[str, str | None]:
    """Option -> metavar (None for a flag) from the first table after the line ``intro``."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(intro))
    rows: dict[str, str | None] = {}
    in_table = False
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            in_table = True
            first = line.strip("|").split(" | ")[0].strip()
            for cell in re.findall(r"`([^`]+)`", first):
                option, _, metavar = cell.replace("\\|", "|").partition(" ")
                if option.startswith("-"):
                    rows[option] = metavar or None
        elif in_table:
            break
    assert rows, f"no option table after {intro!r} in README.md"
    return rows


def help_options(command: str) -> dict[str, str | None]:
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    out: dict[str, str | None] = {}
    for param in click_command.params:
        if param.param_type_name != "option" or "--help" in param.opts:
            continue
        metavar = None if getattr(param, "is_flag", False) else param.metavar
        for name in (*param.opts, *param.secondary_opts):
            out[name] = metavar
    return out


def installer_options() -> set[str]:
    proc = subprocess.run([sys.executable, str(INSTALLER), "--help"], capture_output=True,
                          text=True, check=True)  # fmt: skip
    # "options:" from Python 3.10 on, "optional arguments:" before
    options = re.split(r"^(?:options|optional arguments):$", proc.stdout, flags=re.M)[1]
    options = options.split("\n\n", 1)[0]
    found = set(re.findall(r"^  (-[-\w]+(?:, -[-\w]+)?)", options, re.M))
    names = {n.strip() for entry in found for n in entry.split(",")}
    return names - {"-h", "--help"}


@pytest.mark.parametrize("command", [c for c in TABLES if c != "installer"])
def test_readme_table_matches_help(command):
    documented = table_after(TABLES[command])
    actual = help_options(command)
    assert set(documented) - set(actual) == set(), "in README.md but not in --help"
    assert set(actual) - set(documented) == set(), "in --help but not in README.md"
    for option, metavar in actual.items():
        assert documented[option] == metavar, (
            f"{command} {option}: README shows {documented[option]!r}, --help {metavar!r}"
        )


def test_installer_table_matches_its_help():
    documented = set(table_after(TABLES["installer"]))
    assert documented == installer_options()


def test_one_metavar_style():
    """UPPER-CASE for a value to fill in, lower-case words for a choice among literals."""
    for command in ("build", "release", "versions", "diff", "verify", "split"):
        for option, metavar in help_options(command).items():
            if metavar is None:
                continue
            choice = re.fullmatch(r"[a-z0-9_]+(\|[a-z0-9_]+)+", metavar)
            value = re.fullmatch(r"[A-Z]+(\|[A-Z]+|\|gpg:FPR)*(\[,…\])?", metavar)
            assert choice or value, f"{command} {option} {metavar}"
