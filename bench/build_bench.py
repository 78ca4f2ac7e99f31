"""`make bench`: how long `airdock build` takes, and how much memory, against the fixture mirror.

Speed and memory are measured here, never asserted in tests. The fixture mirror is served
with an added per-request latency (a far mirror) and the build is timed with a
cold cache at --jobs 1 and --jobs 4, then with a warm cache (no RPM fetched).

Peak memory (the build's own process, from wait4's rusage) is measured for a normal build
and for builds against a hostile mirror that answers with 2 GiB (repomd.xml with no stated
size, and an RPM's body running past its stated size): a build's peak RSS must not depend on
what a remote sends (target: under 300 MB).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from builder.bundle import build  # noqa: E402
from builder.download import Cache, Downloader  # noqa: E402
from builder.mirrors import MirrorChain, resolve_mirror  # noqa: E402
from builder.plan import BuildOptions  # noqa: E402
from tests.rig.httpserver import MirrorServer  # noqa: E402
from tests.rig.mirror import cached_fixture_mirror  # noqa: E402

LATENCY = float(os.environ.get("BENCH_LATENCY", "0.05"))


def timed_build(
    server: MirrorServer, fixture, tmp: Path, cache: Path, jobs: int
) -> tuple[float, int]:
    opts = BuildOptions(
        mirror=MirrorChain(
            (resolve_mirror(f"{server.url}/docker-ce", f"{server.url}/centos-vault"),)
        ),
        output=tmp / f"out-{jobs}-{time.monotonic_ns()}",
        cache_dir=cache,
        jobs=jobs,
        gpg_keys=fixture.keys,
        images=(),
    )
    downloader = Downloader(Cache(cache))
    start = time.perf_counter()
    build(opts, downloader)
    return time.perf_counter() - start, downloader.stats.fetched


RSS_TARGET_MB = 300


def peak_rss(args: list[str]) -> tuple[int, float, str]:
    """Run ``airdock ARGS`` in its own process: (exit code, peak RSS in MB, last line)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "builder.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    last = (err.strip().splitlines() or [""])[-1]
    return proc.returncode, usage.ru_maxrss / 1024, last


def memory(server: MirrorServer, fixture, tmp: Path) -> None:
    base = [
        "build", "--mirror", f"{server.url}/docker-ce", "--os-mirror", f"{server.url}/centos-vault",
        *(x for key in fixture.keys for x in ("--gpg-key", str(key))), "--no-images",
        "--retries", "0",
    ]  # fmt: skip
    extras = "/centos-vault/7.9.2009/extras/x86_64/"
    rpm = (
        "/"
        + fixture.rpm_path("extras", "x86_64", "slirp4netns").relative_to(fixture.root).as_posix()
    )
    cases = [
        ("normal build (cold cache)", None),
        ("2 GiB answer for repomd.xml", lambda: server.endless(extras + "repodata/repomd.xml")),
        ("2 GiB answer for an RPM", lambda: server.endless(rpm)),
    ]
    for label, arm in cases:
        server.reset()
        if arm:
            arm()
        out = tmp / f"rss-{time.monotonic_ns()}"
        code, mb, last = peak_rss([*base, "--output", str(out), "--cache-dir", str(out / "c")])
        verdict = "ok" if mb < RSS_TARGET_MB else "OVER TARGET"
        sent = sum(e["sent"] for e in server.log) / 2**20
        print(f"peak RSS, {label:<28}: {mb:6.1f} MB (target < {RSS_TARGET_MB} MB: {verdict}); "
              f"exit {code}; server sent {sent:.1f} MiB")  # fmt: skip
        if code:
            print(f"    {last[:160]}")


def main() -> None:
    fixture = cached_fixture_mirror(("x86_64",))
    with (
        tempfile.TemporaryDirectory(prefix="airdock-bench-") as tmp_name,
        MirrorServer(fixture.root) as server,
    ):
        tmp = Path(tmp_name)
        server.delay = LATENCY
        print(f"fixture mirror with {LATENCY * 1000:.0f} ms added per request")
        for jobs in (1, 4):
            seconds, fetched = timed_build(server, fixture, tmp, tmp / f"cache-{jobs}", jobs)
            print(f"cold cache, --jobs {jobs}: {seconds:6.2f} s  ({fetched} files fetched)")
        seconds, fetched = timed_build(server, fixture, tmp, tmp / "cache-4", 4)
        print(f"warm cache, --jobs 4: {seconds:6.2f} s  ({fetched} files fetched)")
        server.delay = 0.0
        memory(server, fixture, tmp)


if __name__ == "__main__":
    main()
