"""`make bench`: airdock against the classic toolchain and the physical limit, side by side.

Speed and memory are measured here, never asserted in tests. See bench/README.md for how to
read the table. Everything airdock does is the real CLI in a subprocess (``airdock build``),
so the bench survives the CLI changing underneath: the bundle is found by glob, requests are
counted by kind at the link, not read from airdock's own statistics.

    .venv/bin/python -m bench.build_bench            # full: >= 3 interleaved runs, 2 links
    .venv/bin/python -m bench.build_bench --quick    # 1 run, the 20 MiB/s link only
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_TOP))

from bench.bigmirror import BenchMirror, cached_bench_mirror  # noqa: E402
from bench.classic import REPOS, Classic  # noqa: E402
from bench.link import Link, LinkServer, summarize, timeline  # noqa: E402

MIB = 1 << 20
LATENCY = 0.1
RESULTS = REPO_TOP / "bench" / "results"
IMAGE_REPO = "library/hello-world:latest"
# Goals of issue 11 (ratios; never asserted in tests).
COLD_LIMIT_TARGET = 1.15
COLD_CLASSIC_TARGET = 0.6
WARM_CLASSIC_TARGET = 0.15
RSS_TARGET_MB = 120.0
VERIFY_TARGET = 0.8
ALL = "rpm,images,verify,hostile"

VERIFY_HARNESS = r"""
import sys, time
bundle = sys.argv[1]
sys.path.insert(0, bundle)
import airdock_install as m
args = m.parse_args(["check", "--bundle", bundle, "--log", "/dev/null"])
s = m.Session(args)
b = m.load_bundle(s, bundle)
problems, count, extra = m.verify_bundle_files(b)
if problems:
    sys.stderr.write("problems: %r\n" % (problems[:3],))
    sys.exit(1)
sys.stdout.write("%d\n" % count)
"""


# --------------------------------------------------------------------------- samples


@dataclass
class Series:
    """Samples of one measurement (seconds unless ``unit`` says otherwise)."""

    label: str
    unit: str = "s"
    samples: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def min(self) -> float | None:
        return min(self.samples) if self.samples else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "unit": self.unit,
            "samples": self.samples,
            "min": self.min,
            "median": self.median,
            "failures": self.failures,
            **self.extra,
        }


@dataclass
class Run:
    seconds: float
    rss_mb: float
    code: int
    last_line: str
    start: float  # time.monotonic() at launch


def run_measured(cmd: list[str], cwd: Path | None = None) -> Run:
    """Wall time, peak RSS (wait4's rusage of the process itself) and exit code of ``cmd``."""
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    last = (err.strip().splitlines() or [""])[-1]
    return Run(seconds, usage.ru_maxrss / 1024, proc.returncode, last, start)


def describe_timeline(when: dict[str, float | None]) -> str:
    def t(key: str) -> str:
        value = when.get(key)
        return "—" if value is None else f"{value:.2f}"

    return (
        f"[first request {t('first_request')} s, first RPM {t('first_rpm_request')} s, "
        f"last RPM byte {t('last_rpm_byte')} s]"
    )


AIRDOCK: list[str] = []  # --airdock: another checkout's entry point


def airdock_cmd() -> list[str]:
    """The ``airdock`` beside this Python (the venv's entry point), unless --airdock says."""
    if AIRDOCK:
        return AIRDOCK
    exe = Path(sys.executable).parent / "airdock"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "builder.cli"]


def build_args(base_url: str, keys: list[Path], out: Path, cache: Path) -> list[str]:
    return [
        *airdock_cmd(),
        "build",
        "--mirror",
        f"{base_url}/docker-ce",
        "--os-mirror",
        f"{base_url}/centos-vault",
        *(x for k in keys for x in ("--gpg-key", str(k))),
        "--output",
        str(out),
        "--cache-dir",
        str(cache),
    ]


def find_bundle(out: Path) -> dict[str, Any]:
    """What the build wrote, found by glob (the container format may change: .tar, .tar.gz)."""
    files = [p for p in out.glob("airdock-*") if p.is_file()]
    archives = [p for p in files if ".tar" in p.name and not p.name.endswith((".sha256", ".asc"))]
    folders = [p for p in out.glob("airdock-*") if (p / "SHA256SUMS").is_file()]
    return {
        "archives": sorted(p.name for p in archives),
        "archive_bytes": sum(p.stat().st_size for p in archives),
        "folder": str(folders[0]) if folders else None,
    }


def physical_limit(mirror: BenchMirror, rpm_bytes: int, rate: float) -> dict[str, float]:
    """Bytes a build cannot avoid fetching / the link rate + the round trips it cannot avoid.

    Per repository repomd.xml, primary (and the os repo's comps), plus the RPMs; round trips:
    all repomd.xml at once, all primaries at once, then the RPMs (in parallel, link-bound).
    """
    meta = 0
    for rid, path in REPOS.items():
        repodata = mirror.root / path / "repodata"
        repomd = repodata / "repomd.xml"
        meta += repomd.stat().st_size
        ns = {"r": "http://linux.duke.edu/metadata/repo"}
        for data in ET.parse(repomd).getroot().findall("r:data", ns):  # our own file
            kind = data.get("type")
            if kind == "primary" or (rid == "os" and kind == "group_gz"):
                loc = data.find("r:location", ns)
                assert loc is not None
                meta += (repodata.parent / str(loc.get("href"))).stat().st_size
    total = meta + rpm_bytes
    rtts = 3
    return {
        "metadata_bytes": meta,
        "rpm_bytes": rpm_bytes,
        "bytes": total,
        "rate": rate,
        "round_trips": rtts,
        "latency": LATENCY,
        "seconds": total / rate + rtts * LATENCY,
    }


# --------------------------------------------------------------------------- the bench


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path, stack: ExitStack) -> None:
        self.args = args
        self.tmp = tmp
        self.stack = stack
        self.series: dict[str, Series] = {}
        self.notes: list[str] = []
        self.limits: dict[str, dict[str, float]] = {}
        self.last_bundle: Path | None = None  # a warm build's folder (for verify)

    def s(self, key: str, label: str, unit: str = "s") -> Series:
        """The series ``key``; keys of a link's rounds start with its tag ("20MiB.")."""
        tag = key.split(".", 1)[0]
        if tag.endswith("MiB"):
            label = f"{label} @{tag[:-3]} MiB/s"
        return self.series.setdefault(key, Series(label, unit))

    def fresh(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.tmp))
        return path

    def log(self, text: str) -> None:
        print(text, flush=True)

    # ------------------------------------------------------------------ RPM builds

    def airdock_cold(self, key: str, server: LinkServer, mirror: BenchMirror, jobs: int) -> Path:
        work = self.fresh(key)
        out, cache = work / "out", work / "cache"
        cmd = [*build_args(server.url, mirror.keys, out, cache), "--no-images", "--jobs", str(jobs)]
        server.link.reset()
        run = run_measured(cmd)
        raw = server.link.reset()
        hits, when = summarize(raw), timeline(raw, run.start)
        series = self.s(key, f"airdock cold --jobs {jobs}")
        rss = self.s(key + ".rss", f"peak RSS, airdock cold --jobs {jobs}", "MB")
        if run.code:
            series.failures.append(run.last_line)
        else:
            series.samples.append(run.seconds)
            rss.samples.append(run.rss_mb)
            series.extra["requests"] = hits
            series.extra.setdefault("timeline_per_run", []).append(when)
            series.extra["bundle"] = find_bundle(out)
        self.log(
            f"  {series.label:<40} {run.seconds:7.2f} s  {run.rss_mb:6.1f} MB  "
            + describe_timeline(when)
            + (f"  FAILED: {run.last_line}" if run.code else "")
        )
        return work

    def airdock_warm(self, key: str, server: LinkServer, mirror: BenchMirror, work: Path) -> None:
        out, cache = work / "out", work / "cache"
        cmd = [*build_args(server.url, mirror.keys, out, cache), "--no-images"]
        server.link.reset()
        run = run_measured(cmd)
        raw = server.link.reset()
        hits = summarize(raw)
        series = self.s(key, "airdock warm rebuild")
        rss = self.s(key + ".rss", "peak RSS, airdock warm rebuild", "MB")
        if run.code:
            series.failures.append(run.last_line)
        else:
            series.samples.append(run.seconds)
            rss.samples.append(run.rss_mb)
            series.extra.setdefault("requests_per_run", []).append(hits)
            series.extra.setdefault("timeline_per_run", []).append(timeline(raw, run.start))
        self.log(
            f"  {series.label:<40} {run.seconds:7.2f} s  {run.rss_mb:6.1f} MB  "
            f"requests {hits.get('all', {}).get('requests', 0)}, conditional "
            f"{hits.get('all', {}).get('conditional', 0)}, 304s "
            f"{hits.get('all', {}).get('not_modified', 0)}"
            + (f"  FAILED: {run.last_line}" if run.code else "")
        )

    def classic(self, key: str, server: LinkServer, mirror: BenchMirror) -> None:
        work = self.fresh(key)
        try:
            tool = Classic(work, mirror.core_root, mirror.keys, server.url)
            for phase in ("cold", "warm"):
                server.link.reset()
                times = tool.run()
                hits = summarize(server.link.reset())
                for archiver in ("gzip", "pigz"):
                    series = self.s(f"{key}.{phase}.{archiver}", f"classic {phase}, {archiver}")
                    series.samples.append(times.total(archiver))
                    series.extra.setdefault("steps_per_run", []).append(times.steps)
                    series.extra.setdefault("requests_per_run", []).append(hits)
                self.s(f"{key}.{phase}.dnf_rss", f"peak RSS, dnf ({phase})", "MB").samples.append(
                    times.dnf_rss_mb
                )
                self.log(
                    f"  classic {phase:<32} {times.total('gzip'):7.2f} s (gzip), "
                    f"{times.total('pigz'):.2f} s (pigz); "
                    + ", ".join(f"{k} {v:.2f}" for k, v in times.steps.items())
                )
        except (RuntimeError, OSError) as exc:
            for phase in ("cold", "warm"):
                for archiver in ("gzip", "pigz"):
                    self.s(
                        f"{key}.{phase}.{archiver}", f"classic {phase}, {archiver}"
                    ).failures.append(str(exc))
            self.log(f"  classic FAILED: {exc}")
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def rpm_rounds(self, mirror: BenchMirror, rate_mib: int, jobs_list: list[int]) -> None:
        link = Link(rate_mib * MIB, LATENCY)
        tag = f"{rate_mib}MiB"
        server = self.stack.enter_context(LinkServer(link, root=mirror.root))
        for i in range(self.args.runs):
            self.log(
                f"link {rate_mib} MiB/s + {LATENCY * 1000:.0f} ms/request, run {i + 1}/"
                f"{self.args.runs}"
            )
            warm_base: Path | None = None
            for jobs in jobs_list:
                work = self.airdock_cold(f"{tag}.cold.j{jobs}", server, mirror, jobs)
                if jobs == 4:
                    warm_base = work
                else:
                    shutil.rmtree(work, ignore_errors=True)
            if warm_base is not None:
                self.airdock_warm(f"{tag}.warm", server, mirror, warm_base)
                if self.last_bundle is None:
                    self.last_bundle = warm_base
                else:
                    shutil.rmtree(warm_base, ignore_errors=True)
            self.classic(f"{tag}.classic", server, mirror)

    # ------------------------------------------------------------------ images

    def images(self, mirror_root: Path, keys: list[Path]) -> None:
        """skopeo copy vs airdock's image path, same registry behind the same kind of link."""
        from tests.rig.registry import start_registry
        from tests.rig.testimage import build_test_image, skopeo_push

        try:
            image = build_test_image(self.fresh("image"))
            registry = start_registry(self.fresh("registry"))
        except Exception as exc:  # a missing compiler or registry: say so, keep the rest
            self.notes.append(f"images skipped: {str(exc).splitlines()[0]}")
            return
        self.stack.callback(registry.stop)
        skopeo_push(
            image,
            "latest",
            f"{registry.host}/{IMAGE_REPO}",
            auth_file=self.tmp / "skopeo-auth.json",
        )
        link = Link(self.args.image_rate * MIB, LATENCY)
        front = self.stack.enter_context(LinkServer(link, upstream=registry.url))
        files = self.stack.enter_context(LinkServer(Link(None, LATENCY), root=mirror_root))
        ref = f"127.0.0.1:{front.port}/{IMAGE_REPO}"
        # A warm RPM cache of the small fixture mirror; each run gets a copy of it, so the
        # difference between a build with the image and one without is the image path.
        seed = self.fresh("img-seed")
        first = run_measured(
            [*build_args(files.url, keys, seed / "out", seed / "cache"), "--no-images"]
        )
        if first.code:
            self.notes.append(f"images skipped: seed build failed: {first.last_line}")
            return
        for i in range(self.args.runs):
            self.log(f"image {ref}, run {i + 1}/{self.args.runs}")
            for with_image in (True, False):
                work = self.fresh("img")
                shutil.copytree(seed / "cache", work / "cache", symlinks=True)
                extra = ["--image", ref] if with_image else ["--no-images"]
                link.reset()
                run = run_measured(
                    [*build_args(files.url, keys, work / "out", work / "cache"), *extra]
                )
                hits = summarize(link.reset())
                key = "image.airdock_build" if with_image else "image.airdock_base"
                label = "airdock build --image (warm RPMs)" if with_image else "same, --no-images"
                series = self.s(key, label)
                if run.code:
                    series.failures.append(run.last_line)
                else:
                    series.samples.append(run.seconds)
                    if with_image:
                        series.extra["requests"] = hits
                self.log(f"  {label:<40} {run.seconds:7.2f} s")
                shutil.rmtree(work, ignore_errors=True)
            out = self.fresh("skopeo")
            link.reset()
            run = run_measured(
                [
                    "skopeo",
                    "copy",
                    "--quiet",
                    "--src-tls-verify=false",
                    f"docker://{ref}",
                    f"docker-archive:{out / 'img.tar'}:hello:latest",
                ]
            )
            hits = summarize(link.reset())
            series = self.s("image.skopeo", "skopeo copy docker:// docker-archive:")
            if run.code:
                series.failures.append(run.last_line)
            else:
                series.samples.append(run.seconds)
                series.extra["requests"] = hits
            self.log(f"  {'skopeo copy':<40} {run.seconds:7.2f} s")
            shutil.rmtree(out, ignore_errors=True)
        with_img, base = (
            self.series.get("image.airdock_build"),
            self.series.get("image.airdock_base"),
        )
        if with_img and base and with_img.samples and base.samples:
            diff = self.s("image.airdock", "airdock image path (difference)")
            diff.samples = [a - b for a, b in zip(with_img.samples, base.samples)]

    # ------------------------------------------------------------------ installer verify

    def verify(self) -> None:
        """The installer's checksum pass vs ``sha256sum -c`` on the same unpacked bundle."""
        from tests.rig.tools import pyenv_python

        if self.last_bundle is None:
            self.notes.append("verify skipped: no bundle was built")
            return
        found = find_bundle(self.last_bundle / "out")
        folder = Path(found["folder"]) if found["folder"] else None
        if folder is None and found["archives"]:
            dest = self.fresh("unpacked")
            archive = self.last_bundle / "out" / found["archives"][0]
            with tarfile.open(archive) as tar:
                tar.extractall(dest, filter="data")
            folder = next((p.parent for p in dest.rglob("SHA256SUMS")), None)
        if folder is None or not (folder / "airdock_install.py").exists():
            self.notes.append("verify skipped: no unpacked bundle with airdock_install.py")
            return
        listed = [
            line.split(None, 1)[1].lstrip("*").strip()
            for line in (folder / "SHA256SUMS").read_text().splitlines()
            if line.strip()
        ]
        nbytes = sum((folder / rel).stat().st_size for rel in listed)
        harness = self.tmp / "verify_harness.py"
        harness.write_text(VERIFY_HARNESS)
        pythons: dict[str, str] = {}
        try:
            pythons["python2.7"] = pyenv_python("2.7.18")
        except BaseException as exc:  # pytest's skip is a BaseException
            self.notes.append(f"python2.7 not found: {exc}")
        pythons["python3"] = shutil.which("python3") or sys.executable
        commands: dict[str, list[str]] = {
            "sha256sum -c": ["sha256sum", "-c", "--quiet", "SHA256SUMS"]
        }
        for name, exe in pythons.items():
            commands[f"installer verify, {name}"] = [exe, str(harness), str(folder)]
            probe = subprocess.run([exe, "-c", "import _hashlib"], capture_output=True, check=False)
            if probe.returncode:
                self.notes.append(
                    f"{name} ({exe}) has no _hashlib (built without OpenSSL): "
                    "its sha256 is the slower built-in module"
                )
        run_measured(commands["sha256sum -c"], cwd=folder)  # page cache warm for everyone
        rounds = 3 * self.args.runs  # a second each, and the noisiest CPU-bound rows
        for i in range(rounds):
            self.log(f"verify {nbytes / 1e6:.0f} MB bundle, run {i + 1}/{rounds}")
            for name, cmd in commands.items():
                run = run_measured(cmd, cwd=folder)
                series = self.s(f"verify.{name}", name, "MB/s")
                series.extra["bytes"] = nbytes
                if run.code:
                    series.failures.append(run.last_line)
                else:
                    series.samples.append(nbytes / 1e6 / run.seconds)
                self.log(
                    f"  {name:<40} {run.seconds:7.2f} s  {nbytes / 1e6 / run.seconds:7.0f} MB/s"
                )

    # ------------------------------------------------------------------ hostile mirrors

    def hostile(self) -> None:
        """Peak RSS must not depend on what a remote sends (2 GiB answers from the fixture)."""
        from tests.rig.httpserver import MirrorServer
        from tests.rig.mirror import cached_fixture_mirror

        fixture = cached_fixture_mirror(("x86_64",))
        extras = "/centos-vault/7.9.2009/extras/x86_64/"
        rpm = (
            "/"
            + fixture.rpm_path("extras", "x86_64", "slirp4netns")
            .relative_to(fixture.root)
            .as_posix()
        )
        with MirrorServer(fixture.root) as server:
            cases: list[tuple[str, Callable[[], None]]] = [
                (
                    "2 GiB answer for repomd.xml",
                    lambda: server.endless(extras + "repodata/repomd.xml"),
                ),
                ("2 GiB answer for an RPM", lambda: server.endless(rpm)),
            ]
            for label, arm in cases:
                server.reset()
                arm()
                work = self.fresh("hostile")
                run = run_measured(
                    [
                        *build_args(server.url, fixture.keys, work / "out", work / "cache"),
                        "--no-images",
                        "--retries",
                        "0",
                    ]
                )
                series = self.s(f"hostile.{label}", f"peak RSS, {label}", "MB")
                series.samples.append(run.rss_mb)
                series.extra["exit"] = run.code
                series.extra["last_line"] = run.last_line[:200]
                self.log(f"  {series.label:<40} {run.rss_mb:6.1f} MB (exit {run.code})")


# --------------------------------------------------------------------------- report


def fmt(value: float | None, unit: str = "s") -> str:
    if value is None:
        return "—"
    if unit == "MB/s":
        return f"{value:.0f} MB/s"
    if unit == "MB":
        return f"{value:.0f} MB"
    return f"{value:.2f} s"


def goals(bench: Bench) -> list[dict[str, Any]]:
    """Every goal of issue 11: the measured ratio (from medians) beside its target."""
    S = bench.series  # noqa: N806
    rows: list[dict[str, Any]] = []

    def med(key: str) -> float | None:
        return S[key].median if key in S else None

    def add(goal: str, ratio: float | None, target: str, ok: bool | None, detail: str) -> None:
        rows.append({"goal": goal, "ratio": ratio, "target": target, "ok": ok, "detail": detail})

    for tag, limit in bench.limits.items():
        cold = med(f"{tag}.cold.j4")
        classic = [
            v
            for v in (med(f"{tag}.classic.cold.gzip"), med(f"{tag}.classic.cold.pigz"))
            if v is not None
        ]
        lim = limit["seconds"]
        r = cold / lim if cold else None
        add(
            f"cold --jobs 4 vs physical limit ({tag}/s)",
            r,
            f"≤ {COLD_LIMIT_TARGET}",
            None if r is None else r <= COLD_LIMIT_TARGET,
            f"{fmt(cold)} vs {lim:.2f} s",
        )
        best = min(classic) if classic else None
        r = cold / best if cold and best else None
        add(
            f"cold --jobs 4 vs classic, best of gzip/pigz ({tag}/s)",
            r,
            f"≤ {COLD_CLASSIC_TARGET}",
            None if r is None else r <= COLD_CLASSIC_TARGET,
            f"{fmt(cold)} vs {fmt(best)}",
        )
    for tag in bench.limits:
        warm = med(f"{tag}.warm")
        classic = [
            v
            for v in (med(f"{tag}.classic.warm.gzip"), med(f"{tag}.classic.warm.pigz"))
            if v is not None
        ]
        best = min(classic) if classic else None
        r = warm / best if warm and best else None
        runs = S[f"{tag}.warm"].extra.get("requests_per_run", []) if f"{tag}.warm" in S else []
        rpm_bytes = max((h.get("rpm", {}).get("bytes", 0) for h in runs), default=None)
        reqs = max((h.get("all", {}).get("requests", 0) for h in runs), default=None)
        cond = min((h.get("all", {}).get("conditional", 0) for h in runs), default=None)
        add(
            f"warm rebuild vs classic warm, best of gzip/pigz ({tag}/s)",
            r,
            f"≤ {WARM_CLASSIC_TARGET}",
            None if r is None else r <= WARM_CLASSIC_TARGET,
            f"{fmt(warm)} vs {fmt(best)}",
        )
        n = len(REPOS)
        add(
            f"warm: RPM bytes re-downloaded ({tag}/s)",
            None,
            "0",
            None if rpm_bytes is None else rpm_bytes == 0,
            f"{rpm_bytes} bytes",
        )
        add(
            f"warm: one conditional request per repository ({tag}/s)",
            None,
            f"{n} requests, {n} conditional",
            None if reqs is None else (reqs == n and cond == n),
            f"{reqs} requests, {cond} conditional",
        )
    rss = [v for k, s in S.items() if k.endswith(".rss") for v in s.samples]
    if rss:
        peak = max(rss)
        add(
            "peak RSS of airdock build (max over all runs)",
            peak / RSS_TARGET_MB,
            f"≤ {RSS_TARGET_MB:.0f} MB",
            peak <= RSS_TARGET_MB,
            fmt(peak, "MB"),
        )
    if "image.skopeo" in S:
        img, sk = med("image.airdock"), med("image.skopeo")
        r = img / sk if img is not None and sk else None
        add(
            "image path vs skopeo copy (time ratio)",
            r,
            "≤ 1.0",
            None if r is None else r <= 1.0,
            f"{fmt(img)} vs {fmt(sk)}",
        )
    base = med("verify.sha256sum -c")
    for key in S:
        if key.startswith("verify.installer"):
            v = med(key)
            r = v / base if v and base else None
            add(
                f"{S[key].label} vs sha256sum -c (throughput)",
                r,
                f"≥ {VERIFY_TARGET}",
                None if r is None else r >= VERIFY_TARGET,
                f"{fmt(v, 'MB/s')} vs {fmt(base, 'MB/s')}",
            )
    return rows


def print_report(bench: Bench, rows: list[dict[str, Any]]) -> None:
    print()
    print(f"{'measurement':<52} {'min':>10} {'median':>10}  n  failures")
    for s in bench.series.values():
        print(
            f"{s.label[:52]:<52} {fmt(s.min, s.unit):>10} {fmt(s.median, s.unit):>10} "
            f"{len(s.samples):>2}  {len(s.failures) or ''}"
        )
    print()
    for tag, lim in bench.limits.items():
        print(
            f"physical limit at {tag}/s: {lim['bytes'] / 1e6:.1f} MB "
            f"({lim['metadata_bytes'] / 1e6:.2f} MB metadata) / {lim['rate'] / MIB:.0f} MiB/s"
            f" + {lim['round_trips']} × {lim['latency'] * 1000:.0f} ms = {lim['seconds']:.2f} s"
        )
    print()
    print(f"{'goal (from medians)':<62} {'ratio':>6}  {'target':<28} {'ok':<4} measured")
    for r in rows:
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        ok = {True: "yes", False: "NO", None: "—"}[r["ok"]]
        print(f"{r['goal'][:62]:<62} {ratio:>6}  {r['target']:<28} {ok:<4} {r['detail']}")
    for note in bench.notes:
        print(f"note: {note}")


def git_commit() -> str:
    def git(*args: str) -> str:
        proc = subprocess.run(
            ["git", *args], cwd=REPO_TOP, capture_output=True, text=True, check=False
        )
        return proc.stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short=12", "HEAD") + ("-dirty" if dirty else "")


@contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="airdock-bench-") as name:
        yield Path(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 run, 20 MiB/s only, no 5 MiB/s link and no hostile-mirror RSS",
    )
    parser.add_argument("--runs", type=int, default=None, help="interleaved runs (default 3)")
    parser.add_argument("--rates", default=None, help="link rates in MiB/s (default 20,5)")
    parser.add_argument("--image-rate", type=int, default=20, help="registry link, MiB/s")
    parser.add_argument("--output", type=Path, default=None, help="results JSON path")
    parser.add_argument(
        "--only",
        default=None,
        help="comma-separated sections: rpm,images,verify,hostile (default: "
        "all; --quick leaves out hostile)",
    )
    parser.add_argument(
        "--airdock",
        default=None,
        help="the airdock command to measure (default: this venv's), e.g. another worktree's "
        ".venv/bin/airdock to compare two builders on the same mirror",
    )
    args = parser.parse_args(argv)
    if args.airdock:
        AIRDOCK[:] = [args.airdock]
    sections = set((args.only or ("rpm,images,verify" if args.quick else ALL)).split(","))
    args.runs = args.runs or (1 if args.quick else 3)
    rates = [int(r) for r in (args.rates or ("20" if args.quick else "20,5")).split(",")]
    started = time.time()

    mirror = cached_bench_mirror()
    print(
        f"bench mirror: {mirror.path} ({args.runs} run(s), links {rates} MiB/s, "
        f"{LATENCY * 1000:.0f} ms per request)",
        flush=True,
    )
    with workdir() as tmp, ExitStack() as stack:
        bench = Bench(args, tmp, stack)
        # The plan (RPM sizes) from a dry run on an unthrottled link.
        with LinkServer(Link(None, 0.0), root=mirror.root) as plain:
            dry = subprocess.run(
                [
                    *build_args(plain.url, mirror.keys, tmp / "dry", tmp / "dryc"),
                    "--no-images",
                    "--dry-run",
                    "--json",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
        plan = json.loads(dry.stdout)
        rpm_bytes = sum(int(p["size"]) for p in plan["packages"])
        if "rpm" in sections:
            for i, rate in enumerate(rates):
                bench.limits[f"{rate}MiB"] = physical_limit(mirror, rpm_bytes, rate * MIB)
                jobs = [1, 4, 8] if i == 0 else [4]
                bench.rpm_rounds(mirror, rate, jobs)
        if "images" in sections:
            bench.images(mirror.fixture.root, mirror.fixture.keys)
        if "verify" in sections:
            if bench.last_bundle is None:  # no timed build ran: make one on a free link
                work = bench.fresh("verify-build")
                with LinkServer(Link(None, 0.0), root=mirror.root) as plain:
                    run_measured(
                        [
                            *build_args(plain.url, mirror.keys, work / "out", work / "cache"),
                            "--no-images",
                        ]
                    )
                bench.last_bundle = work
            bench.verify()
        if "hostile" in sections:
            bench.hostile()
        rows = goals(bench)
        print_report(bench, rows)
        elapsed = time.time() - started
        result = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": git_commit(),
            "airdock": airdock_cmd(),
            "host": {
                "cpus": os.cpu_count(),
                "loadavg": os.getloadavg(),
                "python": platform.python_version(),
            },
            "config": {
                "runs": args.runs,
                "rates_mib": rates,
                "latency": LATENCY,
                "quick": args.quick,
                "packages": len(plan["packages"]),
                "rpm_bytes": rpm_bytes,
            },
            "limits": bench.limits,
            "series": {k: s.as_json() for k, s in bench.series.items()},
            "goals": rows,
            "notes": bench.notes,
            "elapsed_seconds": round(elapsed, 1),
        }
    out = args.output or RESULTS / (
        datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        + f"-{result['commit']}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\nwritten {out.relative_to(REPO_TOP) if out.is_relative_to(REPO_TOP) else out} "
        f"({elapsed / 60:.1f} min)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
