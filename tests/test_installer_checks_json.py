"""``install.sh check --json`` always names every check, in order: those that could not run are
``"status": "skipped"`` with the reason (no yum, not root, a damaged bundle, a bundle that cannot
be read), and nothing in the JSON points at output "above" that --json does not print.
"""

from __future__ import annotations

import json

import pytest

from tests.rig.fixtures_sandbox import installer_python
from tests.rig.sandbox import CENTOS_6, INSTALLER, KERNEL_EL6, flip_byte
from tests.test_installer_static import ai

pytestmark = pytest.mark.slow


def check_json(sb, bundle, *args, user=None, python=None, proc=None) -> dict:
    proc = proc or sb.installer(bundle, "check", "--json", *args, user=user, python=python)
    assert "Traceback" not in proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert [c["name"] for c in result["checks"]] == list(ai.CHECK_NAMES)
    assert {c["status"] for c in result["checks"]} <= {"pass", "warn", "fail", "skipped"}
    assert "see above" not in proc.stdout
    return result


def test_every_check_is_listed_when_yum_is_missing_and_not_root(sandbox, installer_bundles):
    sb = sandbox(os_release=CENTOS_6, kernel=KERNEL_EL6)
    (sb.shims / "yum").unlink()
    result = check_json(sb, installer_bundles["26.1.4"], user="nobody",
                        python=installer_python("2.7"))  # fmt: skip
    status = {c["name"]: c for c in result["checks"]}
    assert result["ok"] is False
    assert status["root"]["status"] == "fail" and status["tools"]["status"] == "fail"
    assert status["tools"]["message"] == "yum not found: this is not a yum/rpm host"
    for name in ("signatures", "headers", "remove-list", "conflicts", "docker-ce", "transaction"):
        assert status[name]["status"] == "skipped"
        assert status[name]["message"] == "needs yum and rpm" and status[name]["fix"] is None
    assert result["error"].startswith("preflight failed: root: running as uid 65534, not root")
    assert result["error"].endswith("(+3 more: os, kernel, tools)")


def test_checks_skipped_after_a_damaged_bundle_say_why(sandbox, installer_bundles, bundle_copy):
    sb = sandbox()
    bundle = bundle_copy(installer_bundles["26.1.4"])
    flip_byte(next((bundle / "rpms").glob("docker-ce-2*.rpm")))
    result = check_json(sb, bundle)
    status = {c["name"]: c for c in result["checks"]}
    assert status["checksums"]["status"] == "fail"
    for name in ("signatures", "headers", "remove-list", "transaction"):
        assert status[name] == {"name": name, "status": "skipped", "fix": None,
                                "message": "the bundle failed its checksums"}  # fmt: skip


def test_every_check_is_listed_when_the_bundle_cannot_be_read(sandbox, tmp_path):
    sb = sandbox()
    proc = sb.run([installer_python("3.6"), INSTALLER, "check", "--json", "--bundle", tmp_path])
    result = check_json(sb, tmp_path, proc=proc)
    assert result["ok"] is False and result["exit_code"] == 1
    assert all(c["status"] == "skipped" for c in result["checks"])
    assert all(c["message"] == f"not run: {result['error']}" for c in result["checks"])
