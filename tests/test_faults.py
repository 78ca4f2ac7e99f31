"""Fault injection: hostile mirrors and registries, real media, concurrent and crashed builds.

Every fault is tried for real: the rig's fault-injecting HTTP server (and hostile servers
written here) on 127.0.0.1, real tmpfs mounts for other filesystems, real processes killed
with real signals. Each fault must end the same way: one ``Error:`` line naming the problem
and what to do, a non-zero exit code, nothing under a final name, and a cache that a clean
rebuild can use to produce the very same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.rig import mirror as rig
from tests.rig.fixtures_mirror import builder_mirror_args
from tests.test_build import airdock, build

# Short waits for hostile servers: one retry, a 3 s rate window.
FAST = ("--retries", "1", "--timeout", "3")


def refused(result, *words: str, code: int = 1) -> str:
    """The contract: exit ``code``, exactly one line of output, ``Error: …``, no traceback."""
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == code, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


def nothing_published(output: Path) -> None:
    """No final name and no work folder: at most hidden lock files."""
    left = sorted(p.name for p in output.iterdir()) if output.exists() else []
    assert [n for n in left if not n.startswith(".") or n.startswith(".airdock-build-")] == [], left


def tarball_sha256(result) -> str:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["tarball_sha256"]


@pytest.fixture(scope="module")
def reference_sha256(tmp_path_factory, fixture_mirror, mirror_server) -> str:
    """The tarball of a clean build: every fault's rebuild must give these very bytes."""
    tmp = tmp_path_factory.mktemp("reference")
    return tarball_sha256(build(tmp, builder_mirror_args(fixture_mirror, mirror_server.url)))


def rpm_url_path(fixture, repo: str, name: str) -> str:
    return "/" + fixture.rpm_path(repo, "x86_64", name).relative_to(fixture.root).as_posix()


def repo_path(repo: str) -> str:
    return "/" + rig.repo_relpath(repo, "x86_64")


def fault_then_clean_rebuild(tmp_path, mirror, mirror_args, reference, *words, extra=()) -> str:
    """Build with the fault armed (refused, nothing published), then disarm it: a rebuild on
    the same cache gives the reference bytes (the cache was not poisoned)."""
    result = build(tmp_path, mirror_args, *FAST, *extra)
    line = refused(result, *words)
    nothing_published(tmp_path / "bundles")
    mirror.reset()
    assert tarball_sha256(build(tmp_path, mirror_args)) == reference
    return line


# -- bounded downloads and deadlines ---------------------------------------------------------
SLIRP = ("extras", "slirp4netns")


def _rpm(fixture) -> str:
    return rpm_url_path(fixture, *SLIRP)


FAULTS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    # name: (arm the fault on the server, words the one line must hold)
    "5xx": (lambda m, f: m.fail(_rpm(f), 503, times=None), ("HTTP 503", "gave up after 2")),
    "404": (lambda m, f: m.fail(_rpm(f), 404, times=None), ("not found (HTTP 404)",)),
    "truncated": (lambda m, f: m.truncate(_rpm(f), times=None), ("slirp4netns", "gave up")),
    "short-body": (
        lambda m, f: m.override(_rpm(f), b"\xed\xab\xee\xdb" * 100), ("slirp4netns", "gave up"),
    ),
    "reset": (lambda m, f: m.reset_connection(_rpm(f)), ("slirp4netns", "gave up")),
    "wrong-bytes": (lambda m, f: m.corrupt(_rpm(f)), ("checksum mismatch", "expected sha256:")),
    "longer-body": (
        lambda m, f: m.override(_rpm(f), f.rpm_path("extras", "x86_64", "slirp4netns")
                                .read_bytes() + b"x" * 65536),
        ("announces", "the metadata says"),
    ),
    "huge-content-length": (
        lambda m, f: m.lie_length(_rpm(f), 10**12), ("announces 1000000000000 bytes",)
    ),
    "bad-primary-checksum": (
        lambda m, f: m.corrupt("-primary.xml.gz"), ("checksum mismatch", "primary metadata"),
    ),
    "endless-repomd": (
        lambda m, f: m.endless(repo_path("extras") + "/repodata/repomd.xml"),
        ("4194304 bytes",),
    ),
    "redirect-loop": (
        lambda m, f: m.redirect(repo_path("extras") + "/Packages/",
                                m.url + repo_path("extras") + "/Packages/"),
        ("too many redirects",),
    ),
    "redirect-to-file": (
        lambda m, f: m.redirect(repo_path("extras") + "/Packages/", "file:///etc/"),
        ("file:///etc/", "not an HTTP URL"),
    ),
    "one-byte-per-second": (
        lambda m, f: m.trickle(_rpm(f), 50), ("no complete answer within",)
    ),
}  # fmt: skip


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_mirror_fault_is_one_line_and_leaves_nothing(
    fault, tmp_path, fixture_mirror, mirror, mirror_args, reference_sha256
):
    arm, words = FAULTS[fault]
    arm(mirror, fixture_mirror)
    fault_then_clean_rebuild(tmp_path, mirror, mirror_args, reference_sha256, *words)


@pytest.mark.parametrize("fault", ["longer-body", "huge-content-length"])
def test_a_body_longer_than_promised_is_not_retried_against_that_mirror(
    fault, tmp_path, fixture_mirror, mirror, mirror_args
):
    FAULTS[fault][0](mirror, fixture_mirror)
    refused(build(tmp_path, mirror_args, *FAST), *FAULTS[fault][1])
    assert mirror.count(_rpm(fixture_mirror), "GET") == 1
    [entry] = [e for e in mirror.log if e["path"] == _rpm(fixture_mirror)]
    size = fixture_mirror.rpm_path(SLIRP[0], "x86_64", SLIRP[1]).stat().st_size
    assert entry["sent"] < size + (1 << 20)


def test_an_unbounded_document_is_cut_at_its_cap(tmp_path, mirror, mirror_args):
    """repomd.xml has no stated size: 4 MiB is read, not the 2 GiB the server offers."""
    mirror.endless(repo_path("extras") + "/repodata/repomd.xml")
    refused(build(tmp_path, mirror_args, *FAST), "4194304 bytes")
    sent = [
        e["sent"] for e in mirror.log if e["path"].endswith("extras/x86_64/repodata/repomd.xml")
    ]
    assert sent and max(sent) < 64 << 20, sent  # the server stopped when airdock hung up


def test_retries_say_which_attempt_and_why_once(tmp_path, fixture_mirror, mirror, mirror_args):
    mirror.fail(_rpm(fixture_mirror), 503, times=2)
    result = airdock("build", *mirror_args, "--no-images", "--output", tmp_path / "out",
                     "--cache-dir", tmp_path / "cache", "--retries", "2")  # fmt: skip
    assert result.exit_code == 0, result.output
    name = fixture_mirror.pkg(SLIRP[0], "x86_64", SLIRP[1]).filename
    for n in (1, 2):
        lines = [ln for ln in result.output.splitlines() if f"retry {n}/2 of {name}" in ln]
        assert len(lines) == 1, result.output
        assert "answered HTTP 503" in lines[0] and lines[0].startswith("==> warning: ")
    assert result.output.count("answered HTTP 503") == 2


# -- names and digests from remotes are validated before use ---------------------------------


# -- output on another filesystem (USB sticks) -----------------------------------------------


# -- split parts ------------------------------------------------------------------------------


# -- concurrent and crashed builds ------------------------------------------------------------


# -- error lines ------------------------------------------------------------------------------
