"""`airdock fleet-report`: the fleet playbook's report read back (builder/fleet.py).

Pure: reports as the playbook writes them (see installer/ansible/report.yml) and broken ones.
The playbook's own Markdown is compared with render_markdown in tests/test_fleet.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.cli import app
from builder.errors import UsageError
from builder.fleet import load_report, parse_report, render_markdown
from tests.rig.tools import cli_runner, combined_output


def report(**changes) -> dict:
    doc = {
        "format": "airdock-fleet-report",
        "format_version": 1,
        "action": "install",
        "bundle": "airdock-docker-ce-26.1.4-el7-x86_64-docker",
        "check_mode": False,
        "generated": "2026-11-30T01:00:00Z",
        "summary": {"hosts": 2, "ok": 1, "failed": 1, "changed": 1},
        "hosts": [
            {"host": "node01", "action": "install", "result": "installed", "ok": True,
             "changed": True, "docker_before": "docker 1.13.1-209.git7d71120.el7.centos",
             "docker_after": "docker-ce 26.1.4-1.el7", "transaction_id": 7,
             "duration_s": 41.26, "failure": None, "fix": None, "checks": []},
            {"host": "node02", "action": "install", "result": "refused", "ok": False,
             "changed": False, "docker_before": None, "docker_after": None,
             "transaction_id": None, "duration_s": None,
             "failure": "preflight failed: kernel: 2.6.32-754.el6.x86_64 | too old",
             "fix": "boot a CentOS 7 kernel\n(3.10 or newer)", "checks": []},
        ],
    }  # fmt: skip
    doc.update(changes)
    return doc


def test_the_table_has_one_row_per_host_with_cells_escaped():
    text = render_markdown(parse_report(report()))
    lines = text.splitlines()
    assert lines[0] == "# airdock fleet report: install airdock-docker-ce-26.1.4-el7-x86_64-docker"
    assert lines[2] == "1 of 2 hosts ok"
    assert lines[4] == (
        "| host | result | docker before | docker after | yum transaction | duration | failure"
        " | fix |"
    )
    assert lines[6] == (
        "| node01 | installed | docker 1.13.1-209.git7d71120.el7.centos | docker-ce 26.1.4-1.el7"
        " | 7 | 41.3 s | - | - |"
    )
    # a '|' in a failure line cannot break the table; a newline cannot either
    assert lines[7] == (
        "| node02 | refused | - | - | - | - | preflight failed: kernel: 2.6.32-754.el6.x86_64 \\|"
        " too old | boot a CentOS 7 kernel (3.10 or newer) |"
    )


@pytest.mark.parametrize(
    "doc, problem",
    [
        ([], '"format" is not'),
        (report(format="something-else"), '"format" is not'),
        (report(format_version=2), "format_version 2 is not 1"),
        (report(hosts={"node01": {}}), '"hosts" is not a list'),
        (report(hosts=["node01"]), "hosts[0] is not an object"),
        (report(hosts=[{"host": "n", "result": "installed", "failure": ["x"]}]),
         "hosts[0].failure is not text"),
        (report(hosts=[{"host": "n"}]), "hosts[0] has no host or result"),
        (report(hosts=[{"host": "n", "result": "installed", "transaction_id": 1.5}]),
         "hosts[0].transaction_id is not a number"),
        (report(hosts=[{"host": "n", "result": "installed", "duration_s": "long"}]),
         "hosts[0].duration_s is not a number"),
    ],
)  # fmt: skip
def test_a_malformed_report_is_one_line(doc, problem):
    with pytest.raises(UsageError) as err:
        parse_report(doc, "r.json")
    assert problem in str(err.value) and "\n" not in str(err.value)


def test_fleet_report_prints_the_table_and_exits_1_when_a_host_failed(tmp_path: Path):
    path = tmp_path / "airdock-fleet-report.json"
    path.write_text(json.dumps(report()))
    result = cli_runner().invoke(app, ["fleet-report", str(path)])
    assert result.exit_code == 1
    assert result.stdout == render_markdown(load_report(path))
    path.write_text(json.dumps(report(hosts=report()["hosts"][:1])))
    result = cli_runner().invoke(app, ["fleet-report", str(path), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)[0]["transaction_id"] == 7


def test_fleet_report_refuses_what_is_not_a_report(tmp_path: Path):
    for name, data in (("missing.json", None), ("binary.json", b"\xff\xfe"), ("x.json", b"{")):
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        result = cli_runner().invoke(app, ["fleet-report", str(path)])
        out = combined_output(result)
        assert result.exit_code != 0 and out.startswith("Error: "), out
        assert "Traceback" not in out and len(out.strip().splitlines()) == 1, out
