"""The installer reads yum's output as real yum 3.4.3 prints it.

``tests/data/real-el7/yum-transcripts.md`` holds 21 verbatim console transcripts of CentOS/RHEL
7 yum with their public source URLs (PROVENANCE there). The installer's yum-output readers
(``parse_yum_output``, ``yum_history_newest`` behind ``committed_transaction``,
``last_error_line``) are run on them here, on the current Python and on every interpreter the
installer supports (Python 2.7 reads the zh_CN transcript too). Some transcripts are excerpts
that stop mid-line (``[… excerpt ends]``): what they still show must be read, and the cut
must not be mistaken for something else.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.rig.fixtures_sandbox import INSTALLER_PYTHONS, installer_python
from tests.rig.sandbox import INSTALLER
from tests.test_installer_static import RecordingSession, ai

TRANSCRIPTS = INSTALLER.parents[1] / "tests" / "data" / "real-el7" / "yum-transcripts.md"


def transcripts() -> dict[str, list[str]]:
    """``{"T1": [block, ...], ...}``: the fenced blocks under each ``## Tn`` heading."""
    out: dict[str, list[str]] = {}
    current = None
    for section in re.split(r"^## ", TRANSCRIPTS.read_text(encoding="utf-8"), flags=re.M)[1:]:
        current = section.split(" ", 1)[0]
        out[current] = re.findall(r"^```\n(.*?)^```", section, flags=re.M | re.S)
    return out


T = transcripts()


def test_the_transcripts_are_all_there():
    assert sorted(T, key=lambda t: int(t[1:])) == [f"T{i}" for i in range(1, 22)]
    assert all(T[t] for t in T)
    assert "Source: https://" in TRANSCRIPTS.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "name, missing",
    [
        ("T1", [("container-selinux >= 2.9", "3:docker-ce-18.09.1-3.el7.x86_64")]),
        ("T2", [("container-selinux >= 2:2.74", "containerd.io-1.2.6-3.3.el7.x86_64"),
                ("container-selinux >= 2:2.74", "3:docker-ce-19.03.3-3.el7.x86_64")]),
        ("T3", [("container-selinux >= 2:2.74", "containerd.io-1.2.10-3.2.el7.x86_64"),
                ("container-selinux >= 2:2.74", "3:docker-ce-19.03.3-3.el7.x86_64")]),
        # obsoletes substitution: the note names docker-ce-selinux; what is missing is docker-ce's
        ("T4", [("container-selinux >= 2.9", "docker-ce-17.06.0.ce-1.el7.centos.x86_64")]),
        ("T6", [("libsemanage >= 2.5-13", "selinux-policy-3.13.1-229.el7_6.6.noarch"),
                ("policycoreutils >= 2.5-24", "selinux-policy-targeted-3.13.1-229.el7_6.6.noarch"),
                ("policycoreutils >= 2.5-24", "selinux-policy-3.13.1-229.el7_6.6.noarch")]),
        ("T7", [("pigz", "docker-ce-18.03.1.ce-1.el7.centos.x86_64")]),
    ],
)  # fmt: skip
def test_missing_requirements_as_yum_prints_them(name, missing):
    result = ai.parse_yum_output(T[name][0])
    assert result["missing"] == missing
    assert not result["ok"] and result["conflicts"] == [] and result["extra_removals"] == []


def test_many_missing_requirements_of_one_package_and_an_excerpt_cut_mid_word():
    result = ai.parse_yum_output(T["T8"][0])
    by = "docker-ce-17.06.0.ce-1.el7.centos.x86_64"
    assert result["missing"] == [("libseccomp.so.2()(64bit)", by), ("systemd-units", by),
                                 ("con", by)]  # fmt: skip
    assert not result["ok"]


def test_a_zh_cn_yum_error_is_read_like_the_english_one():
    result = ai.parse_yum_output(T["T9"][0])
    by = "docker-ce-18.03.1.ce-1.el7.centos.x86_64"
    assert [need for need, _ in result["missing"]] == [
        "libseccomp.so.2()(64bit)", "libsystemd.so.0(LIBSYSTEMD_209)(64bit)",
        "libc.so.6(GLIBC_2.17)(64bit)", "systemd-units", "libseccomp >= 2.3", "pigz",
        "libsystemd.so.0()(64bit)", "container-selinux >= 2.9",
    ]  # fmt: skip
    assert {pkg for _, pkg in result["missing"]} == {by} and not result["ok"]


@pytest.mark.parametrize("name", ["T10", "T12"])
def test_transaction_check_file_conflicts(name):
    text = T[name][0]
    result = ai.parse_yum_output(text)
    files = [line for line in text.splitlines() if "conflicts with file from package" in line]
    assert result["conflicts"] == [line.strip() for line in files] and len(files) >= 4
    assert result["conflicts"][0].startswith("file /usr/")
    assert not result["ok"] and result["missing"] == []


def test_a_file_conflict_as_ansible_relays_it():
    # T11 is yum's output inside an ansible JSON string: decoded, it is yum's text again
    body = T["T11"][0].strip().lstrip('"').rstrip("\\ ")  # the excerpt cuts the string
    text = json.loads('"' + body + '"')
    result = ai.parse_yum_output(text)
    assert result["conflicts"] == [
        "file /usr/bin/docker from install of docker-ce-cli-1:18.09.0-3.el7.x86_64 conflicts "
        "with file from package docker-ce-18.03.1.ce-1.el7.centos.x86_64",
        "file /usr/share/bash-completion/completions/docker from install of "
        "docker-ce-cli-1:18.09.0-3.el7.x86_64 conflicts with file from package "
        "docker-ce-18.03.1.ce-1.el7.centos.x86_64",
    ]


def test_a_conflict_error_even_when_the_excerpt_cuts_it():
    result = ai.parse_yum_output(T["T5"][0])
    # "--> Processing Conflict" lines are yum working (it restarts resolution), not errors
    assert result["conflicts"] == ["Error: docker-ce-selinux conflicts wit"]
    assert not result["ok"] and result["missing"] == []


@pytest.mark.parametrize("name", ["T15", "T16", "T17"])
def test_transaction_tables_are_no_removals_and_no_success(name):
    for block in T[name]:
        result = ai.parse_yum_output(block)
        assert result == {"missing": [], "conflicts": [], "extra_removals": [], "ok": False}


@pytest.mark.parametrize("name, newest", [("T20", 5), ("T21", 6)])
def test_the_newest_transaction_id_of_a_real_history_list(name, newest):
    session = RecordingSession(T[name][0])
    assert ai.committed_transaction(session, newest - 1) == {"id": newest}
    assert ai.committed_transaction(RecordingSession(T[name][0]), newest)["id"] is None
    assert session.commands == [["yum", "--disablerepo=*", "history", "list"]]


def test_history_info_is_not_a_history_list():
    # T19 is `yum history info`: no "ID | Login user" rows, so no transaction ID from it
    for block in T["T19"]:
        result = ai.committed_transaction(RecordingSession(block), None)
        assert result == {"id": None, "why_no_id": "`yum history list` lists no transaction"}


@pytest.mark.parametrize(
    "name, line",
    [
        ("T1", "Error: Package: 3:docker-ce-18.09.1-3.el7.x86_64 (docker-ce-stable)"),
        ("T13", "docker-ce-24.0.6-1.el7.aarch64 FAILED"),
        ("T4", "Error: Package: docker-ce-17.06.0.ce-1.el7.centos.x86_64 (docker-ce-edge)"),
    ],
)
def test_the_line_an_error_message_quotes(name, line):
    assert ai.last_error_line(T[name][0]) == line


_ON_EVERY_PYTHON = r"""
import imp, io, json, sys
ai = imp.load_source("ai", sys.argv[1])
text = io.open(sys.argv[2], encoding="utf-8").read()
print(json.dumps(ai.parse_yum_output(text)))
"""


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
def test_every_installer_python_reads_the_zh_cn_and_english_transcripts(label, tmp_path):
    python = installer_python(label)
    for name, count in (("T9", 8), ("T2", 2)):
        sample = tmp_path / f"{name}.txt"
        sample.write_text(T[name][0], encoding="utf-8")
        script = _ON_EVERY_PYTHON
        if label != "2.7":
            script = script.replace("import imp,", "import importlib.util,").replace(
                'ai = imp.load_source("ai", sys.argv[1])',
                'spec = importlib.util.spec_from_file_location("ai", sys.argv[1])\n'
                "ai = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(ai)",
            )
        proc = subprocess.run(
            [python, "-c", script, str(INSTALLER), str(sample)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert len(json.loads(proc.stdout)["missing"]) == count, (label, name)
