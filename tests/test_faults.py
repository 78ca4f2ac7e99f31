"""Fault injection: hostile mirrors and registries, real media, concurrent and crashed builds.

Every fault is tried for real: the rig's fault-injecting HTTP server (and hostile servers
written here) on 127.0.0.1, real tmpfs mounts for other filesystems, real processes killed
with real signals. Each fault must end the same way: one ``Error:`` line naming the problem
and what to do, a non-zero exit code, nothing under a final name, and a cache that a clean
rebuild can use to produce the very same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from builder.bundle import name_lock
from builder.cli import app
from builder.download import Cache, Digest, Downloader
from builder.errors import MirrorError
from builder.images import RegistryOptions, pull_images
from builder.locks import FileLock
from builder.split import PartWriter, join_instructions, part_glob
from tests.rig import mirror as rig
from tests.rig.fixtures_mirror import builder_mirror_args
from tests.rig.httpserver import MirrorServer
from tests.rig.repoedit import edit_package, hardlinked_copy
from tests.rig.tools import IN_CI, cli_runner, combined_output, run
from tests.test_build import airdock, build

# Short waits for hostile servers: one retry, a 3 s rate window.
FAST = ("--retries", "1", "--timeout", "3")


def refused(result, *words: str, code: int = 1) -> str:
    """The contract: exit ``code``, exactly one line of output, ``Error: …``, no traceback;
    with --json, one error object on stdout instead (its error and fix make the line)."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    if result.stdout.startswith("{"):
        doc = json.loads(result.stdout)
        assert doc["ok"] is False and doc["exit_code"] == code, result.stdout
        assert "\n" not in doc["error"] + doc["fix"]
        lines = ["Error: " + "; ".join(part for part in (doc["error"], doc["fix"]) if part)]
    else:
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
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
@contextlib.contextmanager
def lying_mirror(tmp_path: Path, fixture, repo: str, name: str, edit) -> Iterator[MirrorServer]:
    """The fixture tree with one package's primary entry rewritten by ``edit`` (repomd.xml
    re-sealed around it, so only the lie is left to catch)."""
    www = hardlinked_copy(fixture.root, tmp_path / "www")
    filename = fixture.pkg(repo, "x86_64", name).filename
    edit_package(www / rig.repo_relpath(repo, "x86_64"), filename, edit)
    with MirrorServer(www) as server:
        yield server


def _location(href: str):
    return lambda block: re.sub(rb'<location href="[^"]+"', b'<location href="' +
                                href.encode() + b'"', block)  # fmt: skip


@pytest.mark.parametrize(
    "href",
    [
        "../../../../../../tmp/airdock-victim.rpm",
        "/etc/passwd.rpm",
        "Packages/slirp4netns&#10;forged  line.rpm",
        "http://elsewhere.invalid/x.rpm",
        "Packages/slirp4netns-0.4.3-4.el7_8.x86_64.rpm.sh",
        "Packages/with space.rpm",
    ],
)
def test_hostile_rpm_locations_are_refused_before_any_download(tmp_path, fixture_mirror, href):
    with lying_mirror(tmp_path, fixture_mirror, *SLIRP, _location(href)) as server:
        result = build(tmp_path, builder_mirror_args(fixture_mirror, server.url), *FAST)
        line = refused(result, "which is not a plain relative RPM path", "use another mirror")
        assert server.count(".rpm") == 0
    assert "\n" not in line
    nothing_published(tmp_path / "bundles")


BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE repomd [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(
        b'<!ENTITY %c "%s">' % (ord("b") + i, (b"&%c;" % (ord("a") + i)) * 10) for i in range(8)
    )  # fmt: skip
    + b']>\n<repomd xmlns="http://linux.duke.edu/metadata/repo"><revision>&i;</revision>'
    + b"</repomd>\n"
)


def test_xml_entity_bomb_in_repomd_is_one_line(tmp_path, mirror, mirror_args, reference_sha256):
    """10^9 characters if expanded: refused as invalid metadata, in bounded memory."""
    mirror.override(repo_path("extras") + "/repodata/repomd.xml", BILLION_LAUGHS)
    words = "extras/x86_64/repodata/repomd.xml is not valid repomd.xml"
    fault_then_clean_rebuild(tmp_path, mirror, mirror_args, reference_sha256, words)


def test_hostile_metadata_locations_in_repomd_are_refused(tmp_path, fixture_mirror):
    www = hardlinked_copy(fixture_mirror.root, tmp_path / "www")
    repomd = www / rig.repo_relpath("extras", "x86_64") / "repodata" / "repomd.xml"
    text = re.sub(r'(<data type="primary">.*?<location href=")[^"]+', r"\g<1>../../../../x.gz",
                  repomd.read_text(), flags=re.S)  # fmt: skip
    repomd.unlink()
    repomd.write_text(text)
    with MirrorServer(www) as server:
        result = build(tmp_path, builder_mirror_args(fixture_mirror, server.url), *FAST)
        refused(result, "'../../../../x.gz'", "not a plain relative path")
        assert server.count("x.gz") == 0


def test_decompression_bomb_is_refused_by_its_open_size(tmp_path, fixture_mirror):
    """repomd.xml says the primary expands to 10 bytes: expanding further is refused before
    libsolv reads it into memory."""
    www = hardlinked_copy(fixture_mirror.root, tmp_path / "www")
    repomd = www / rig.repo_relpath("extras", "x86_64") / "repodata" / "repomd.xml"
    text = re.sub(r'(<data type="primary">.*?<open-size>)\d+', r"\g<1>10", repomd.read_text(),
                  flags=re.S)  # fmt: skip
    repomd.unlink()
    repomd.write_text(text)
    with MirrorServer(www) as server:
        result = build(tmp_path, builder_mirror_args(fixture_mirror, server.url), *FAST)
        refused(result, "primary metadata expands beyond 10 bytes", "use another")


@pytest.mark.parametrize("field", ["config", "layer"])
def test_registry_digest_that_is_a_path_is_refused_and_deletes_nothing(tmp_path, field):
    """A descriptor digest ``sha256:../../…/victim`` would be a cache path whose clean-up
    unlinks the victim: it is refused where the manifest is read."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    hostile = f"sha256:../../../../../../..{victim}"
    good = {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
            "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest()}  # fmt: skip
    config = dict(good, digest=hostile) if field == "config" else good
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": 1,
             "digest": hostile if field == "layer" else "sha256:" + "0" * 64}  # fmt: skip
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config, "layers": [layer]}  # fmt: skip
    www = tmp_path / "www"
    (www / "v2" / "library" / "app" / "manifests").mkdir(parents=True)
    (www / "v2" / "library" / "app" / "manifests" / "1.0").write_text(json.dumps(manifest))
    cache = tmp_path / "cache"
    with MirrorServer(www) as server:
        ref = f"127.0.0.1:{server.port}/library/app:1.0"
        with pytest.raises(MirrorError, match="malformed descriptor") as err:
            pull_images([ref], "x86_64", Downloader(Cache(cache), retries=0),
                        tmp_path / "bundle", tmp_path / "work", RegistryOptions())  # fmt: skip
        assert server.count("/blobs/") == 0
    assert "\n" not in str(err.value)
    assert victim.read_text() == "precious"
    assert not cache.exists() or [p for p in cache.rglob("*") if p.is_file()] == []


def test_a_huge_registry_manifest_is_cut_at_4_mib(tmp_path):
    """The manifest is streamed and refused past the distribution spec's 4 MiB, not read
    whole into memory first (the server offers 2 GiB)."""
    www = tmp_path / "www"
    (www / "v2" / "library" / "app" / "manifests").mkdir(parents=True)
    (www / "v2" / "library" / "app" / "manifests" / "1.0").write_text("{}")
    with MirrorServer(www) as server:
        server.endless("/v2/library/app/manifests/1.0")
        with pytest.raises(MirrorError, match="larger than the 4194304 bytes allowed"):
            pull_images([f"127.0.0.1:{server.port}/library/app:1.0"], "x86_64",
                        Downloader(Cache(tmp_path / "cache"), retries=0), tmp_path / "bundle",
                        tmp_path / "work", RegistryOptions())  # fmt: skip
        [entry] = [e for e in server.log if e["path"].endswith("/manifests/1.0")]
    assert entry["sent"] < 64 << 20


def test_a_sha1_repository_is_used_with_a_warning_and_never_keys_the_cache(
    tmp_path, fixture_mirror
):
    """Old createrepo wrote sha1: such a repository still works (every file checked against
    it), with a warning, and nothing is cached under a weak digest."""
    www = hardlinked_copy(fixture_mirror.root, tmp_path / "www")
    extras = www / rig.repo_relpath("extras", "x86_64")
    shutil.rmtree(extras / "repodata")
    run(["createrepo_c", "--quiet", "--checksum", "sha1", str(extras)])
    with MirrorServer(www) as server:
        args = builder_mirror_args(fixture_mirror, server.url)
        result = airdock("build", *args, "--no-images", "--output", tmp_path / "out",
                         "--cache-dir", tmp_path / "cache")  # fmt: skip
    assert result.exit_code == 0, result.output
    warnings = [ln for ln in result.output.splitlines() if "states only sha1 checksums" in ln]
    assert len(warnings) == 1 and "centos-extras" in warnings[0]
    assert not (tmp_path / "cache" / "sha1").exists()


# -- output on another filesystem (USB sticks) -----------------------------------------------
@pytest.fixture
def tmpfs(tmp_path) -> Iterator[Callable[..., Path]]:
    """``tmpfs(name, size="64m", ro=False)``: a real tmpfs mounted below tmp_path (root
    only), unmounted at the end: a filesystem of its own, like a USB stick."""
    if os.geteuid() != 0:
        message = "mounting a tmpfs needs root"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    mounted: list[Path] = []

    def mount(name: str, size: str = "64m", ro: bool = False) -> Path:
        point = tmp_path / name
        point.mkdir()
        run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point)])
        mounted.append(point)
        if ro:
            run(["mount", "-o", "remount,ro", str(point)])
        return point

    yield mount
    for point in reversed(mounted):
        run(["umount", "-l", str(point)], check=False)


@pytest.mark.parametrize("where", ["output-on-tmpfs", "cache-on-tmpfs"])
def test_output_and_cache_on_different_filesystems(
    tmp_path, tmpfs, mirror, mirror_args, reference_sha256, where
):
    """The main use: the cache on the disk, the bundle written to a USB stick (and the other
    way round). A second build comes from the cache across the filesystems."""
    stick = tmpfs("stick")
    output, cache = (stick / "out", tmp_path / "cache")
    if where == "cache-on-tmpfs":
        output, cache = tmp_path / "out", stick / "cache"
    assert os.stat(output.parent).st_dev != os.stat(cache.parent).st_dev
    for _ in range(2):
        mirror.reset()
        result = build(tmp_path, mirror_args, output=output, cache=cache)
        assert tarball_sha256(result) == reference_sha256
    assert mirror.count(".rpm") == 0  # the second build took every RPM from the cache
    run(["sha256sum", "-c", "--strict", "--quiet", "SHA256SUMS"],
        cwd=json.loads(result.stdout)["bundle"])  # fmt: skip


def test_full_disk_is_one_line_and_leaves_nothing(
    tmp_path, tmpfs, mirror, mirror_args, reference_sha256
):
    small = tmpfs("small", size="48k")
    result = build(tmp_path, mirror_args, output=small / "out")
    refused(result, "No space left on device", "free space")
    nothing_published(small / "out")
    assert tarball_sha256(build(tmp_path, mirror_args)) == reference_sha256  # same cache


def test_read_only_output_is_one_line(tmp_path, tmpfs, mirror, mirror_args):
    ro = tmpfs("ro", ro=True)
    refused(build(tmp_path, mirror_args, output=ro / "out"), "Read-only file system")
    assert list(ro.iterdir()) == []


# -- split parts ------------------------------------------------------------------------------
SPLIT_KIB = 1024


def _split_cli(*args: object):
    return cli_runner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def _split_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _split_tarball(folder: Path, size: int, name: str = "bundle.tar.gz") -> Path:
    """A stand-in tarball (random bytes) with its ``sha256sum``-format file beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(os.urandom(size))
    (folder / f"{name}.sha256").write_text(f"{_split_sha256(path)}  {name}\n")
    return path


def _split_listing(folder: Path) -> dict[str, str]:
    """Every entry of a folder (hidden ones too) with its sha256: what a reader could see."""
    return {p.name: "dir" if p.is_dir() else _split_sha256(p) for p in folder.iterdir()}


def _split_run_join(folder: Path, join: Path) -> subprocess.CompletedProcess:
    """Run the JOIN file's command with bash in the folder, as the operator on the target does."""
    command = join.read_text().splitlines()[-1]
    return subprocess.run(
        ["bash", "-c", command], cwd=folder, capture_output=True, text=True, check=True
    )


def _split_bash_glob(folder: Path, pattern: str) -> list[str]:
    """What bash expands a glob to, in bash's own order."""
    out = subprocess.run(
        ["bash", "-c", f'printf "%s\\n" {pattern}'], cwd=folder, capture_output=True, text=True
    )
    return out.stdout.splitlines()


def _split_error_line(result) -> str:
    text = combined_output(result)
    assert result.exit_code != 0, text
    lines = [ln for ln in text.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


@pytest.fixture(scope="module")
def split_big_tarball(tmp_path_factory) -> Path:
    """1001 x 64 KiB + 1 byte: 1002 parts at --size 64K, so part numbers need four digits."""
    return _split_tarball(tmp_path_factory.mktemp("big"), 1001 * 64 * SPLIT_KIB + 1)


@pytest.mark.parametrize("count, width", [(1, 3), (1000, 3), (1001, 4)])
def test_part_writer_gives_every_part_the_same_width(tmp_path, count, width):
    data = os.urandom(count)
    with PartWriter(tmp_path / "x.tar.gz", 1) as writer:
        writer.write(data)
    names = [f"x.tar.gz.part-{i:0{width}d}" for i in range(count)]
    assert [p.name for p in writer.parts] == names
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no temporaries left
    glob = part_glob("x.tar.gz", width)
    assert glob in join_instructions("x.tar.gz", writer.parts)
    assert _split_bash_glob(tmp_path, glob) == names  # the shell's order is the parts' order
    joined = subprocess.run(["bash", "-c", f"cat {glob}"], cwd=tmp_path, capture_output=True)
    assert joined.stdout == data


def test_split_of_a_built_tarball_gives_the_parts_a_split_build_gives(
    tmp_path, mirror_args, mirror
):
    def build(output: Path, *extra: str) -> dict:
        result = _split_cli(
            "build", *mirror_args, "--no-images", "--json", "--output", output,
            "--cache-dir", tmp_path / "c", *extra,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    whole = build(tmp_path / "whole")
    split = build(tmp_path / "split", "--split-size", "64K")
    out = tmp_path / "resplit"
    result = _split_cli("split", whole["tarball"], "--size", "64K", "--output", out, "--json")
    assert result.exit_code == 0, result.output
    assert [Path(p).name for p in json.loads(result.stdout)["parts"]] == [
        Path(p).name for p in split["parts"]
    ]
    built = {
        n: d
        for n, d in _split_listing(tmp_path / "split").items()
        if n != Path(split["bundle"]).name
    }
    assert _split_listing(out) == built  # parts, their .sha256, JOIN file and .sha256: same bytes
    assert Path(whole["tarball"]).is_file()


def test_split_into_more_than_1000_parts_rejoins_with_the_join_command(split_big_tarball, tmp_path):
    out = tmp_path / "media"
    before = _split_sha256(split_big_tarball)
    result = _split_cli("split", split_big_tarball, "--size", "64K", "--output", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    names = [f"bundle.tar.gz.part-{i:04d}" for i in range(1002)]
    assert [Path(p).name for p in summary["parts"]] == names
    assert summary["tarball_sha256"] == before
    assert set(_split_listing(out)) == {
        *names,
        *(f"{n}.sha256" for n in names),
        "bundle.JOIN.txt",
        "bundle.tar.gz.sha256",
    }
    assert "part-[0-9][0-9][0-9][0-9]" in (out / "bundle.JOIN.txt").read_text()
    joined = _split_run_join(out, out / "bundle.JOIN.txt")
    assert "bundle.tar.gz: OK" in joined.stdout
    assert _split_sha256(out / "bundle.tar.gz") == before
    assert _split_sha256(split_big_tarball) == before  # the original is kept as it was

    # re-split into the same folder with another width: no four-digit part may remain
    (out / "bundle.tar.gz").unlink()
    result = _split_cli("split", split_big_tarball, "--size", "16M", "--output", out, "--json")
    assert result.exit_code == 0, result.output
    names = [f"bundle.tar.gz.part-{i:03d}" for i in range(4)]
    assert [Path(p).name for p in json.loads(result.stdout)["parts"]] == names
    assert _split_bash_glob(out, "bundle.tar.gz.part-*") == sorted(
        [*names, *(f"{n}.sha256" for n in names)]
    )
    _split_run_join(out, out / "bundle.JOIN.txt")
    assert _split_sha256(out / "bundle.tar.gz") == before


def test_resplit_beside_the_tarball_removes_stale_parts_of_the_same_width(tmp_path):
    tarball = _split_tarball(tmp_path / "usb", 6 * 64 * SPLIT_KIB + 5)
    digest = _split_sha256(tarball)
    first = _split_cli("split", tarball, "--size", "64K")
    assert first.exit_code == 0, first.output
    assert len(list(tarball.parent.glob("bundle.tar.gz.part-[0-9][0-9][0-9]"))) == 7
    second = _split_cli("split", tarball, "--size", "128K")
    assert second.exit_code == 0, second.output
    names = [f"bundle.tar.gz.part-{i:03d}" for i in range(4)]
    assert [ln.split()[-1] for ln in second.stdout.splitlines() if ln.startswith("part:")] == [
        str(tarball.parent / n) for n in names
    ]
    # parts 004-006 of the first split would match the JOIN glob: they must be gone
    assert _split_bash_glob(tarball.parent, "bundle.tar.gz.part-*") == sorted(
        [*names, *(f"{n}.sha256" for n in names)]
    )
    assert _split_sha256(tarball) == digest
    _split_run_join(tarball.parent, tarball.parent / "bundle.JOIN.txt")
    assert _split_sha256(tarball) == digest


@pytest.mark.parametrize(
    "damage, needle",
    [
        ("missing", "bundle.tar.gz.sha256 is missing"),
        ("other file", "has no sha256 line for bundle.tar.gz"),
        ("mismatch", "does not match bundle.tar.gz.sha256"),
    ],
)
def test_split_refuses_a_tarball_its_sha256_does_not_vouch_for(tmp_path, damage, needle):
    tarball = _split_tarball(tmp_path / "src", 3 * 64 * SPLIT_KIB)
    sums = tarball.with_name("bundle.tar.gz.sha256")
    if damage == "missing":
        sums.unlink()
    elif damage == "other file":
        sums.write_text(f"{_split_sha256(tarball)}  other.tar.gz\n")
    else:
        sums.write_text(f"{'0' * 64}  bundle.tar.gz\n")
    before = _split_listing(tarball.parent)
    out = tmp_path / "media"
    line = _split_error_line(_split_cli("split", tarball, "--size", "64K", "--output", out))
    assert needle in line
    assert not out.exists()  # nothing written, not even the folder
    line = _split_error_line(_split_cli("split", tarball, "--size", "64K"))
    assert needle in line
    assert _split_listing(tarball.parent) == before


def test_interrupted_split_leaves_the_earlier_split_untouched(tmp_path):
    """A real ``airdock split`` process, held mid-split by a FIFO, is sent SIGTERM.

    The FIFO stands in for the tarball: the checksum pass reads it whole, then the
    split blocks on it halfway, so the signal lands while parts are being written.
    The tarball is over 2 MiB so that its first half spans a whole read (1 MiB) of the split.
    """
    tarball = _split_tarball(tmp_path / "src", 40 * 64 * SPLIT_KIB + 3)
    data = tarball.read_bytes()
    out = tmp_path / "media"
    done = _split_cli("split", tarball, "--size", "128K", "--output", out)
    assert done.exit_code == 0, done.output
    before = _split_listing(out)
    fifo_dir = tmp_path / "fifo"
    fifo_dir.mkdir()
    fifo = fifo_dir / "bundle.tar.gz"
    os.mkfifo(fifo)
    (fifo_dir / "bundle.tar.gz.sha256").write_text(f"{_split_sha256(tarball)}  bundle.tar.gz\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "builder.cli", "split", fifo, "--size", "64K", "--output", out],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with open(fifo, "wb") as writer:  # the checksum pass
            writer.write(data)
        temp = _split_wait_for(
            lambda: next((p for p in out.glob(".airdock-split-*") if p.name not in before), None),
            proc,
        )
        writer = open(fifo, "wb")  # noqa: SIM115 - left open so the split blocks mid-way
        writer.write(data[: len(data) // 2])
        writer.flush()
        _split_wait_for(lambda: len(list(temp.iterdir())) >= 2, proc)
        proc.send_signal(signal.SIGTERM)
        # A signal landing between two reads of a pipe is acted on when the next read
        # returns: end the FIFO so it does. Had the signal been lost, the split would now
        # fail on a short tarball (exit 1), not report the interrupt.
        with contextlib.suppress(BrokenPipeError):
            writer.close()
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert stderr.strip() == "Error: interrupted; nothing was written under a final name"
    assert _split_listing(out) == before  # old parts, JOIN file and checksums as they were


def _split_wait_for(condition, proc: subprocess.Popen):
    """Poll until ``condition()`` is truthy; the process must still be running meanwhile."""
    for _ in range(12000):
        value = condition()
        if value:
            return value
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    raise AssertionError("the split never reached the expected point")


def test_split_sizes_of_4gib_or_more_warn_that_fat32_cannot_hold_them(tmp_path):
    tarball = _split_tarball(tmp_path, 2 * 64 * SPLIT_KIB)
    result = _split_cli("split", tarball, "--size", "4G", "--json")
    assert result.exit_code == 0, result.output
    assert [Path(p).name for p in json.loads(result.stdout)["parts"]] == ["bundle.tar.gz.part-000"]
    warning = result.stderr.strip().splitlines()
    assert len(warning) == 1 and "FAT32" in warning[0] and "exFAT" in warning[0], warning
    assert _split_cli("split", tarball, "--size", "4095M").stderr == ""


def test_build_with_split_size_of_4gib_or_more_warns_and_goes_on(tmp_path, mirror_args, mirror):
    result = _split_cli(
        "build", *mirror_args, "--no-images", "--dry-run", "--json",
        "--cache-dir", tmp_path / "c", "--split-size", "5G",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["packages"]
    warning = [ln for ln in result.stderr.splitlines() if "FAT32" in ln]
    assert len(warning) == 1 and "--split-size 5G" in warning[0] and "exFAT" in warning[0]


# -- concurrent and crashed builds ------------------------------------------------------------
CHECKOUT = Path(__file__).resolve().parents[1]
EPOCH_A, EPOCH_B = "1719705600", "1719792000"  # two builds with different bytes


def fixture_bundle_name(version: str) -> str:
    return f"airdock-docker-ce-{version}-el7-x86_64-127.0.0.1"


class BuildProcess:
    """A real ``airdock build`` process; its stderr is collected as it comes."""

    def __init__(self, args: Sequence[str], epoch: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "builder.cli", "build", *map(str, args)],
            cwd=CHECKOUT,
            env={**os.environ, "SOURCE_DATE_EPOCH": epoch},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid
        self.err: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)

    def finish(self) -> tuple[int, str, str]:
        """Exit code, stdout and stderr once the build has ended."""
        code = self.proc.wait(timeout=300)
        self._reader.join(timeout=60)
        assert self.proc.stdout is not None
        return code, self.proc.stdout.read(), "".join(self.err)


@pytest.fixture
def start_build(mirror_args):
    """``start_build(output, cache, *options)`` starts a real build; any still running at the
    end of the test is killed by its PID."""
    started: list[BuildProcess] = []

    def start(output: Path, cache: Path, *options: str, epoch: str = EPOCH_A) -> BuildProcess:
        args = [*mirror_args, "--no-images", "--output", output, "--cache-dir", cache, *options]
        started.append(BuildProcess(args, epoch))
        return started[-1]

    yield start
    for running in started:
        if running.proc.poll() is None:
            os.kill(running.pid, signal.SIGKILL)
        running.proc.wait(timeout=60)
        for stream in (running.proc.stdout, running.proc.stderr):
            if stream is not None:
                stream.close()


def wait_while_running(
    condition: Callable[[], bool], what: str, running: Sequence[BuildProcess]
) -> None:
    """Poll until ``condition``; fail (rather than hang) if a build ends first."""
    deadline = time.monotonic() + 120
    while not condition():
        for one in running:
            if one.proc.poll() is not None:
                pytest.fail(f"build {one.pid} ended before {what}: {''.join(one.err)}")
        if time.monotonic() > deadline:
            pytest.fail(f"no sign of {what} after 120 s")
        time.sleep(0.05)


def flock_waiters(path: Path) -> set[int]:
    """PIDs the kernel lists in /proc/locks as blocked on the flock of ``path``."""
    st = path.stat()
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and "FLOCK" in fields and fields[-3] == inode:
            pids.add(int(fields[-4]))
    return pids


def lock_holder(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def cache_entry_lock(cache: Path, rpm: Path) -> FileLock:
    """The lock a build takes to download ``rpm`` into ``cache`` (the test holds it to pin a
    build at a known point: waiting for that RPM)."""
    return Cache(cache).lock(Digest.of("sha256", hashlib.sha256(rpm.read_bytes()).hexdigest()))


def work_folders(output: Path) -> set[Path]:
    return {p for p in output.glob(".airdock-build-*") if p.is_dir()}


def error_lines_of(stderr: str) -> list[str]:
    assert "Traceback" not in stderr
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


def test_two_builds_into_one_output_take_turns_and_publish_one_whole_bundle(
    tmp_path, fixture_mirror, mirror, start_build
):
    """The second build waits for the first (saying so) and then replaces its bundle whole:
    folder, tarball and .sha256 all come from the second; the shared cache saw each RPM once."""
    output, cache, name = tmp_path / "bundles", tmp_path / "cache", fixture_bundle_name("26.1.4")
    docker_ce = fixture_mirror.rpm_path("docker-ce-stable", "x86_64", "docker-ce", "26.1.4")
    pin = cache_entry_lock(cache, docker_ce)
    pin.acquire()
    try:
        first = start_build(output, cache, "--json", epoch=EPOCH_A)
        wait_while_running(
            lambda: lock_holder(output / f".{name}.lock") == first.pid,
            "the first build holding the bundle name",
            [first],
        )
        second = start_build(output, cache, epoch=EPOCH_B)
        waiting = f"==> waiting for another airdock build writing {name} in {output} "
        wait_while_running(lambda: any(waiting in line for line in second.err), waiting, [second])
    finally:
        pin.release()  # the first build fetches docker-ce, publishes; then the second runs
    code1, out1, err1 = first.finish()
    code2, out2, err2 = second.finish()
    assert (code1, code2) == (0, 0), err1 + err2
    assert f"{waiting}(pid {first.pid})…" in err2.splitlines()

    folder, tarball = output / name, output / f"{name}.tar"
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    assert (output / f"{name}.tar.sha256").read_text() == f"{digest}  {name}.tar\n"
    assert f"sha256:   {digest}\n" in out2  # the second build's tarball is the one published
    assert json.loads(out1)["tarball_sha256"] != digest  # (the first's had other bytes)
    manifest = (folder / "manifest.json").read_bytes()
    assert json.loads(manifest)["created"] == "2024-07-01T00:00:00Z"  # the second's
    with tarfile.open(tarball) as tar:
        assert tar.extractfile(f"{name}/manifest.json").read() == manifest
    run(["sha256sum", "--check", "--strict", "--quiet", "SHA256SUMS"], cwd=folder)
    files = [Path(p["file"]).name for p in json.loads(manifest)["packages"]]
    assert {f: mirror.count(f) for f in files} == dict.fromkeys(files, 1)
    published = sorted(p.name for p in output.iterdir())
    assert published == [name, tarball.name, f"{tarball.name}.sha256"]  # no lock or work folder


def test_builds_sharing_a_cache_download_each_rpm_once(
    tmp_path, fixture_mirror, mirror, start_build
):
    """Two builds into different outputs wait for the same cache entry; one downloads it, the
    other takes it from the cache."""
    cache = tmp_path / "cache"
    docker_ce = fixture_mirror.rpm_path("docker-ce-stable", "x86_64", "docker-ce", "26.1.4")
    pin = cache_entry_lock(cache, docker_ce)
    pin.acquire()
    try:
        both = [start_build(tmp_path / out, cache, "--json") for out in ("one", "two")]
        wait_while_running(
            lambda: {b.pid for b in both} <= flock_waiters(pin.path), "both waiting", both
        )
    finally:
        pin.release()
    results = [b.finish() for b in both]
    assert [code for code, _, _ in results] == [0, 0], results
    one, two = (json.loads(out) for _, out, _ in results)
    assert one["tarball_sha256"] == two["tarball_sha256"]
    manifest = json.loads((Path(one["bundle"]) / "manifest.json").read_text())
    files = [Path(p["file"]).name for p in manifest["packages"]]
    assert {f: mirror.count(f) for f in files} == dict.fromkeys(files, 1)
    assert list(cache.rglob("*.lock")) == []


def shm_tmpfs() -> Path | None:
    """/dev/shm when it is a tmpfs mount (it is on Linux distributions)."""
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if fields[1:3] == ["/dev/shm", "tmpfs"] and os.access("/dev/shm", os.W_OK):
            return Path("/dev/shm")
    return None


@pytest.fixture(params=["disk", "tmpfs"])
def lock_place(request, tmp_path) -> Iterator[Path]:
    """A folder for output and cache on the test's disk, or on tmpfs (RAM disks are used too)."""
    if request.param == "disk":
        yield tmp_path
        return
    shm = shm_tmpfs()
    if shm is None:
        pytest.skip("no tmpfs mounted at /dev/shm")
    place = Path(tempfile.mkdtemp(prefix="airdock-test-", dir=shm))
    try:
        yield place
    finally:
        shutil.rmtree(place)


def test_no_wait_fails_at_once_while_the_name_is_locked(lock_place, mirror, start_build):
    output, name = lock_place / "bundles", fixture_bundle_name("26.1.4")
    output.mkdir()
    held = name_lock(output, name)
    held.acquire()
    try:
        code, out, err = start_build(output, lock_place / "cache", "--no-wait").finish()
    finally:
        held.release()
    assert code == 1 and out == ""
    assert error_lines_of(err) == [
        f"Error: another airdock build writing {name} in {output} (pid {os.getpid()}) is "
        f"still running (lock {output}/.{name}.lock); let it finish, or leave out --no-wait "
        "to wait for it"
    ]
    assert mirror.count(".rpm") == 0
    assert list(output.iterdir()) == []  # no work folder left either


def test_killed_build_is_cleaned_up_by_the_next_build_and_a_live_one_is_not(
    tmp_path, fixture_mirror, mirror, start_build
):
    """SIGKILL mid-download leaves a work folder; the next build removes it but not the
    folder of a build that is alive (waiting for an RPM), which then finishes normally."""
    output = tmp_path / "bundles"
    docker_ce = fixture_mirror.rpm_path("docker-ce-stable", "x86_64", "docker-ce", "26.1.4")
    cli_25 = fixture_mirror.rpm_path("docker-ce-stable", "x86_64", "docker-ce-cli", "25.0.5")
    live_pin = cache_entry_lock(tmp_path / "cache-live", docker_ce)
    doomed_pin = cache_entry_lock(tmp_path / "cache", cli_25)
    live_pin.acquire()
    doomed_pin.acquire()
    try:
        live = start_build(output, tmp_path / "cache-live", "--json")
        wait_while_running(
            lambda: live.pid in flock_waiters(live_pin.path), "the live build waiting", [live]
        )
        (live_folder,) = work_folders(output)

        doomed = start_build(output, tmp_path / "cache", "--docker-version", "25.0.5")
        wait_while_running(
            lambda: doomed.pid in flock_waiters(doomed_pin.path),
            "the doomed build waiting",
            [doomed],
        )
        mirror.rate = 500  # bytes/s: docker-ce-cli 25.0.5 takes many seconds to arrive
        doomed_pin.release()
        wait_while_running(
            lambda: any(e["path"].endswith(cli_25.name) and e["sent"] for e in list(mirror.log)),
            "the doomed build downloading",
            [doomed],
        )
        os.kill(doomed.pid, signal.SIGKILL)
        assert doomed.finish()[0] == -signal.SIGKILL
        mirror.rate = None
        (dead,) = work_folders(output) - {live_folder}
        assert lock_holder(dead.with_name(dead.name + ".lock")) == doomed.pid  # lock file left

        code, _, err = start_build(
            output, tmp_path / "cache", "--docker-version", "25.0.5"
        ).finish()
        assert code == 0, err
        assert f"==> removed 1 work folder(s) of interrupted builds: {dead.name}\n" in err
        assert work_folders(output) == {live_folder} and live.proc.poll() is None
    finally:
        live_pin.release()
        doomed_pin.release()
    code, out, err = live.finish()
    assert code == 0, err
    assert Path(json.loads(out)["bundle"]) == output / fixture_bundle_name("26.1.4")
    names = {fixture_bundle_name("26.1.4"), fixture_bundle_name("25.0.5")}
    assert {p.name for p in output.iterdir()} == {
        f"{n}{ext}" for n in names for ext in ("", ".tar", ".tar.sha256")
    }  # no work folder or lock file left
    assert list((tmp_path / "cache").rglob("*.lock")) == []  # nor the killed build's cache lock


# -- error lines ------------------------------------------------------------------------------
def test_unreachable_mirror_says_what_to_do(tmp_path, fixture_mirror):
    result = build(tmp_path, builder_mirror_args(fixture_mirror, "http://127.0.0.1:9"), *FAST)
    refused(result, "mirror unreachable", "127.0.0.1:9", "HTTPS_PROXY", "--mirror aliyun")


def test_unreachable_registry_fails_before_any_rpm(tmp_path, mirror, mirror_args):
    result = airdock("build", *mirror_args, "--output", tmp_path / "out", "--cache-dir",
                     tmp_path / "cache", "--registry-mirror", "http://127.0.0.1:9", "--json",
                     *FAST)  # fmt: skip
    refused(result, "cannot pull docker.io/library/hello-world:latest", "--registry-mirror",
            "--no-images")  # fmt: skip
    assert mirror.count(".rpm") == 0
    nothing_published(tmp_path / "out")


def test_a_bad_image_reference_fails_before_any_rpm(tmp_path, mirror, mirror_args):
    result = airdock("build", *mirror_args, "--output", tmp_path / "out", "--cache-dir",
                     tmp_path / "cache", "--image", "Hello World", "--json")  # fmt: skip
    refused(result, "invalid image reference 'Hello World'", code=2)
    assert mirror.count(".rpm") == 0


def test_mirror_text_with_newlines_stays_on_one_line(tmp_path, fixture_mirror):
    """A requirement named with a newline (``&#10;`` in primary.xml) reaches libsolv's problem
    text; the error is still one line, and the forged 'line' is inside it."""
    forged = b'<rpm:entry name="forged&#10;Error: all good, nothing to see"/>'

    def edit(block: bytes) -> bytes:
        return block.replace(b"<rpm:requires>", b"<rpm:requires>" + forged, 1)

    with lying_mirror(tmp_path, fixture_mirror, "docker-ce-stable", "docker-ce", edit) as srv:
        result = build(tmp_path, builder_mirror_args(fixture_mirror, srv.url), *FAST)
    line = refused(result, "nothing provides forged Error: all good, nothing to see")
    assert line.count("Error:") == 2  # the real prefix and the forged text, on one line
