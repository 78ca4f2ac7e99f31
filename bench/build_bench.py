"""`make bench`: how long `airdock build` takes against the fixture mirror.

Speed is measured here, never asserted in tests. The fixture mirror is served
with an added per-request latency (a far mirror) and the build is timed with a
cold cache at --jobs 1 and --jobs 4, then with a warm cache (no RPM fetched).
"""

from __future__ import annotations

import os
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


if __name__ == "__main__":
    main()
