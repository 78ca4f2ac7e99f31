"""The fleet report the bundle's Ansible playbook writes (``ansible/airdock.yml``).

The playbook writes ``airdock-fleet-report.json`` and the same table as Markdown on the
controller; ``airdock fleet-report FILE.json`` prints the table again from the JSON (for a
change ticket).  The JSON comes from another machine: it is read bounded and validated field
by field, and a malformed report is one ``Error:`` line, not a traceback.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError

REPORT_FORMAT = "airdock-fleet-report"
MAX_REPORT_BYTES = 16 * 1024 * 1024  # a thousand hosts is well under 1 MiB
COLUMNS = ("host", "result", "docker before", "docker after", "yum transaction", "duration",
           "failure", "fix")  # fmt: skip
_TEXT_FIELDS = ("host", "result", "docker_before", "docker_after", "failure", "fix")


@dataclass(frozen=True)
class FleetRow:
    host: str
    result: str
    ok: bool
    docker_before: str | None
    docker_after: str | None
    transaction_id: int | str | None
    duration_s: float | None
    failure: str | None
    fix: str | None


@dataclass(frozen=True)
class FleetReport:
    action: str
    bundle: str | None
    check_mode: bool
    rows: list[FleetRow]

    @property
    def failed(self) -> list[str]:
        return [r.host for r in self.rows if not r.ok]


def load_report(path: Path) -> FleetReport:
    """Read and validate ``airdock-fleet-report.json``."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_REPORT_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}; give the airdock-fleet-report.json "
                         "the playbook wrote") from None  # fmt: skip
    if len(data) > MAX_REPORT_BYTES:
        raise UsageError(f"{path} is larger than {MAX_REPORT_BYTES} bytes: not a fleet report")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not JSON ({exc}); give the airdock-fleet-report.json "
                         "the playbook wrote") from None  # fmt: skip
    return parse_report(doc, str(path))


def parse_report(doc: Any, where: str = "report") -> FleetReport:
    def bad(problem: str) -> UsageError:
        return UsageError(f"{where}: {problem}; is this an airdock-fleet-report.json?")

    if not isinstance(doc, dict) or doc.get("format") != REPORT_FORMAT:
        raise bad(f'"format" is not "{REPORT_FORMAT}"')
    if doc.get("format_version") != 1:
        raise bad(f"format_version {doc.get('format_version')!r} is not 1 (a newer airdock?)")
    hosts = doc.get("hosts")
    if not isinstance(hosts, list):
        raise bad('"hosts" is not a list')
    rows = []
    for index, row in enumerate(hosts):
        if not isinstance(row, dict):
            raise bad(f"hosts[{index}] is not an object")
        for key in _TEXT_FIELDS:
            value = row.get(key)
            if value is not None and not isinstance(value, str):
                raise bad(f"hosts[{index}].{key} is not text")
        if not row.get("host") or not row.get("result"):
            raise bad(f"hosts[{index}] has no host or result")
        tx = row.get("transaction_id")
        if tx is not None and (isinstance(tx, bool) or not isinstance(tx, (int, str))):
            raise bad(f"hosts[{index}].transaction_id is not a number")
        duration = row.get("duration_s")
        if duration is not None and (isinstance(duration, bool)
                                     or not isinstance(duration, (int, float))):  # fmt: skip
            raise bad(f"hosts[{index}].duration_s is not a number")
        rows.append(FleetRow(
            host=row["host"], result=row["result"], ok=row.get("ok") is True,
            docker_before=row.get("docker_before"), docker_after=row.get("docker_after"),
            transaction_id=tx, duration_s=float(duration) if duration is not None else None,
            failure=row.get("failure"), fix=row.get("fix"),
        ))  # fmt: skip
    action = doc.get("action")
    bundle = doc.get("bundle")
    if not isinstance(action, str) or (bundle is not None and not isinstance(bundle, str)):
        raise bad('"action" or "bundle" is not text')
    return FleetReport(action, bundle, doc.get("check_mode") is True, rows)


def cell(value: object) -> str:
    """One table cell: '-' for nothing, '|' escaped, whitespace folded (as the playbook does)."""
    text = str(value) if value else "-"
    return re.sub(r"\s+", " ", text.replace("|", "\\|"))


def render_markdown(report: FleetReport) -> str:
    """The table, exactly as the playbook's report.yml writes airdock-fleet-report.md."""
    ok = sum(1 for r in report.rows if r.ok)
    lines = [
        f"# airdock fleet report: {report.action} {report.bundle or ''}",
        "",
        f"{ok} of {len(report.rows)} hosts ok"
        + (" (check mode: --dry-run)" if report.check_mode else ""),
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for r in report.rows:
        duration = f"{r.duration_s:.1f} s" if r.duration_s is not None else None
        values = (r.host, r.result, r.docker_before, r.docker_after, r.transaction_id, duration,
                  r.failure, r.fix)  # fmt: skip
        lines.append("| " + " | ".join(cell(v) for v in values) + " |")
    return "\n".join(lines) + "\n"
