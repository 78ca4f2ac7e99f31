"""The ``airdock`` command line: option parsing and printing only.

Behaviour lives in the library modules (bundle, resolve, download, …); this
module turns options into a BuildOptions, owns the progress bars, and turns an
AirdockError into one ``Error:`` line on stderr with a non-zero exit code (with
``--json``: an ``{"ok": false, "error": …, "fix": …}`` object on stdout).
Tracebacks are shown only with ``--debug``.

Start-up is kept light: ``airdock --help`` imports typer and the standard library; requests,
libsolv, createrepo_c, sequoia and tqdm are imported by the command that needs them.
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import typer

from . import __version__
from .defaults import DEFAULT_IMAGES, DEFAULT_PACKAGES, DEFAULT_TIMEOUT
from .errors import AirdockError, UsageError
from .mirrors import PRESETS, MirrorChain, check_arch, check_channel, resolve_chain
from .names import one_line
from .report import Reporter

if TYPE_CHECKING:
    from .bundle import BuildResult
    from .download import Downloader, Stats
    from .plan import Plan
    from .releaseconfig import ReleaseConfig

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Bundle Docker CE, its CentOS 7 dependencies and images for air-gapped hosts.",
)

T = TypeVar("T")
DEBUG = False
MIN_BAR_COLUMNS = 40  # narrower terminals (or `script` without a size) get a fixed-width bar


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 part``, ``3 parts``."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def terminal_size() -> tuple[int, int]:
    """stderr's columns and rows; 0 where the terminal does not say (a pty under ``script``)."""
    import os

    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError):
        return 0, 0
    return size.columns, size.lines


def bar_layout(columns: int, rows: int) -> dict[str, Any]:
    """tqdm's layout for a terminal. One that states no size (a pty under ``script``) would
    get nothing from tqdm (0 columns, and 0 rows hide every bar), so it gets 80x24; a narrow
    one gets the numbers without the bar; a normal one follows resizes."""
    layout: dict[str, Any] = {"nrows": rows or 24}
    if columns == 0:
        return {**layout, "ncols": 80}
    if columns < MIN_BAR_COLUMNS:
        return {**layout, "ncols": columns, "bar_format": "{desc}: {percentage:3.0f}% {n_fmt}"}
    if rows == 0:
        return {**layout, "ncols": columns}
    return {"dynamic_ncols": True}


class _Bars:
    """tqdm bars on stderr, only on a terminal and never under --json."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self.bar: Any = None
        self.watcher: threading.Thread | None = None
        self.stop = threading.Event()

    def start(self, label: str, total: int, watch: Path | None = None) -> None:
        self.finish()
        if not self.enabled:
            return
        from tqdm import tqdm

        self.bar = tqdm(
            total=total or None,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=label,
            leave=False,
            file=sys.stderr,
            mininterval=0.2,
            **bar_layout(*terminal_size()),
        )
        if watch is not None:
            self.stop.clear()
            self.watcher = threading.Thread(target=self._watch, args=(watch,), daemon=True)
            self.watcher.start()

    def _watch(self, folder: Path) -> None:
        """Progress of a step without a hook: the growth of the files it writes."""
        seen = 0
        while not self.stop.wait(0.25):
            try:
                now = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
            except OSError:
                continue
            if now > seen and self.bar is not None:
                self.bar.update(now - seen)
                seen = now

    def advance(self, count: int) -> None:
        if self.bar is not None:
            self.bar.update(count)

    def finish(self) -> None:
        if self.watcher is not None:
            self.stop.set()
            self.watcher.join()
            self.watcher = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class ConsoleReporter(Reporter):
    """Steps as lines on stderr, long steps as one tqdm bar (only on a terminal); counts what
    each long step took from the network and from the cache (for the summary)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bars = _Bars(quiet)
        self.stats: Stats | None = None  # the Downloader's counters, once it exists
        self.counts: dict[str, tuple[int, int]] = {}  # label -> (downloaded, from cache)
        self._label = ""
        self._before = (0, 0)

    def _now(self) -> tuple[int, int]:
        return (self.stats.fetched, self.stats.from_cache) if self.stats else (0, 0)

    def step(self, message: str) -> None:
        if not self.quiet:
            typer.echo(f"==> {one_line(message)}", err=True)

    def bytes_started(self, label: str, total: int, watch: Path | None = None) -> None:
        self._label, self._before = label, self._now()
        self.bars.start(label, total, watch)

    def bytes_advanced(self, count: int) -> None:
        self.bars.advance(count)

    def bytes_finished(self) -> None:
        self.bars.finish()
        if self._label:
            now = self._now()
            self.counts[self._label] = (now[0] - self._before[0], now[1] - self._before[1])
            self._label = ""


def split_fix(message: str) -> tuple[str, str]:
    """An error line is "what went wrong; what to do": the two halves for --json."""
    problem, sep, fix = one_line(message).rpartition("; ")
    return (problem, fix) if sep else (fix, "")


def fail(message: str, code: int, as_json: bool) -> typer.Exit:
    if as_json:
        error, fix = split_fix(message)
        document = {"ok": False, "error": error, "fix": fix, "exit_code": code}
        typer.echo(json.dumps(document, indent=2, sort_keys=True))
    else:
        typer.echo(f"Error: {one_line(message)}", err=True)
    return typer.Exit(code)


def run(action: Callable[[], T], as_json: bool = False) -> T:
    """Run a command body, turning AirdockError into one line (or a JSON error object on
    stdout with ``--json``) and an exit code."""
    try:
        return action()
    except AirdockError as exc:
        if DEBUG:
            raise
        raise fail(str(exc), exc.exit_code, as_json) from None
    except OSError as exc:  # the machine said no: permissions, a full disk, a file in the way
        if DEBUG:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        raise fail(
            f"{exc.strerror or exc}{where}; check the path, its permissions and free "
            "space (nothing was written under a final name)",
            1,
            as_json,
        ) from None
    except KeyboardInterrupt:
        raise fail("interrupted; nothing was written under a final name", 130, as_json) from None


def make_downloader(
    cache_dir: Path | None,
    reporter: Reporter | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = 3,
    verify_cache: bool = False,
) -> Downloader:
    from .download import Cache, Downloader
    from .plan import default_cache_dir

    if timeout <= 0:
        raise UsageError(f"--timeout {timeout:g} must be more than 0 seconds")
    if retries < 0:
        raise UsageError(f"--retries {retries} must be 0 or more")
    cache = Cache(cache_dir or default_cache_dir(), verify=verify_cache)
    return Downloader(
        cache,
        retries=retries,
        timeout=timeout,
        on_progress=reporter.bytes_advanced if reporter else None,
        on_retry=(lambda message: reporter.step(f"warning: {message}")) if reporter else None,
        user_agent=f"airdock/{__version__}",
    )


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"airdock {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print the version."
    ),
) -> None:
    global DEBUG
    DEBUG = debug


# Options shared by the commands (typer reads the defaults; one definition each). Metavars:
# UPPER-CASE for a value to fill in, lower-case a|b for a choice among literal words.
OPT_OS_MIRROR = typer.Option(
    None,
    "--os-mirror",
    metavar="NAME|URL",
    help="Preset or URL prefix replacing https://vault.centos.org.",
)
OPT_DOCKER_VERSION = typer.Option(
    None, "--docker-version", metavar="VERSION", help="docker-ce version; default newest."
)
OPT_ARCH = typer.Option("x86_64", "--arch", metavar="x86_64|aarch64", help="Target architecture.")
OPT_CHANNEL = typer.Option(
    "stable", "--channel", metavar="stable|test|nightly", help="docker-ce channel."
)
OPT_PACKAGE = typer.Option(
    None,
    "--package",
    metavar="NAME",
    help=f"Package to install (repeatable); default: {' '.join(DEFAULT_PACKAGES)}.",
)
OPT_CLOSURE = typer.Option(
    "minimal",
    "--closure",
    metavar="minimal|full",
    help="minimal: what a CentOS 7.9 @core host lacks; full: the whole dependency closure.",
)
OPT_BASELINE_FROM = typer.Option(
    None,
    "--baseline-from",
    metavar="FILE",
    help="The target's inventory (`./install.sh inventory -o host.json`, or `rpm -qa` output): "
    "bundle exactly what yum install adds on that host.",
)
OPT_OUTPUT = typer.Option(
    Path("bundles"), "--output", metavar="DIR", help="Folder the bundle is written to."
)
OPT_CACHE_DIR = typer.Option(
    None, "--cache-dir", metavar="DIR", help="Download cache; default ~/.cache/airdock."
)
OPT_JOBS = typer.Option(4, "--jobs", metavar="N", help="Parallel downloads.")
OPT_GPG_KEY = typer.Option(
    None,
    "--gpg-key",
    metavar="FILE",
    help="Extra trusted OpenPGP public key file (repeatable), for private mirrors; "
    "Docker's and CentOS's keys are built in.",
)
OPT_IMAGE = typer.Option(
    None,
    "--image",
    metavar="REF",
    help=f"Image to bundle (repeatable); default {' '.join(DEFAULT_IMAGES)}.",
)
OPT_NO_IMAGES = typer.Option(False, "--no-images", help="Bundle no images.")
OPT_REGISTRY_MIRROR = typer.Option(
    None, "--registry-mirror", metavar="URL", help="Pull-through mirror URL for Docker Hub images."
)
OPT_REGISTRY_USER = typer.Option(
    None,
    "--registry-user",
    metavar="USER",
    help="Registry user; password from AIRDOCK_REGISTRY_PASSWORD. Without it, credentials "
    "come from ~/.docker/config.json when it has the registry.",
)
OPT_ALLOW_DRIFT = typer.Option(
    False, "--allow-mirror-drift", help="Warn instead of failing when mirrors disagree."
)
OPT_SPLIT = typer.Option(
    None,
    "--split-size",
    metavar="SIZE",
    help="Write the tarball as parts of this size (e.g. 3900M for FAT32; 4G or more "
    "needs exFAT/NTFS).",
)
OPT_JSON = typer.Option(False, "--json", help="Machine-readable output on stdout (errors too).")
OPT_TIMEOUT = typer.Option(
    DEFAULT_TIMEOUT,
    "--timeout",
    metavar="SECONDS",
    help="Per-read timeout and rate window: a transfer slower than 10 KiB/s over this window, "
    "or a request longer than this plus its size at 10 KiB/s, is cut and retried.",
)
OPT_SIGN_KEY = typer.Option(
    None,
    "--sign-key",
    metavar="FILE|gpg:FPR",
    help="Sign SHA256SUMS and the tarball's .sha256 (and RELEASES.json): an armoured RSA "
    "secret key (passphrase from AIRDOCK_SIGN_PASSPHRASE) or gpg:FINGERPRINT of a key in gpg.",
)
OPT_RETRIES = typer.Option(3, "--retries", metavar="N", help="Retries per file and mirror.")
OPT_NO_WAIT = typer.Option(
    False,
    "--no-wait",
    help="Fail at once instead of waiting when another build is writing the same bundle "
    "into the output folder.",
)

OPT_VERIFY_CACHE = typer.Option(
    False,
    "--verify-cache",
    help="Hash every cache entry used, even those whose index says they are unchanged.",
)


def _warn(message: str) -> None:
    typer.echo(message, err=True)


def _chain(
    mirror: str | None,
    os_mirror: str | None,
    repo_file: str | None,
    channel: str,
    downloader: Downloader,
) -> MirrorChain:
    """--repo-file (first, when given) and --mirror as one fallback chain."""
    from .mirrors import mirror_from_repo_file

    mirrors = (
        resolve_chain(mirror or "docker", os_mirror).mirrors if mirror or not repo_file else ()
    )
    if repo_file:
        if Path(repo_file).is_file():
            text = Path(repo_file).read_text(encoding="utf-8", errors="replace")
        elif "://" in repo_file:
            with tempfile.TemporaryDirectory(prefix="airdock-repo-") as tmp:
                data, _ = downloader.get_bytes([repo_file], "docker-ce.repo", Path(tmp))
            text = data.decode("utf-8", errors="replace")
        else:
            raise UsageError(f"--repo-file {repo_file}: no such file; give a path or a URL")
        mirrors = (
            mirror_from_repo_file(text, repo_file, check_channel(channel), os_mirror),
            *mirrors,
        )
    return MirrorChain(tuple(mirrors))


@app.command("build")
def build_cmd(
    mirror: Optional[str] = typer.Option(
        None,
        "--mirror",
        metavar="NAME|URL[,…]",
        help="Preset name (any case; get.docker.com's Aliyun, AzureChinaCloud too) or URL "
        "prefix replacing https://download.docker.com; a,b = per-file fallback. Default: docker.",
    ),
    os_mirror: Optional[str] = OPT_OS_MIRROR,
    repo_file: Optional[str] = typer.Option(
        None,
        "--repo-file",
        metavar="PATH|URL",
        help="A docker-ce.repo file (path or URL) giving the baseurl.",
    ),
    docker_version: Optional[str] = OPT_DOCKER_VERSION,
    arch: str = OPT_ARCH,
    channel: str = OPT_CHANNEL,
    package: Optional[list[str]] = OPT_PACKAGE,
    closure: str = OPT_CLOSURE,
    baseline_from: Optional[Path] = OPT_BASELINE_FROM,
    output: Path = OPT_OUTPUT,
    cache_dir: Optional[Path] = OPT_CACHE_DIR,
    jobs: int = OPT_JOBS,
    gpg_key: Optional[list[str]] = OPT_GPG_KEY,
    image: Optional[list[str]] = OPT_IMAGE,
    no_images: bool = OPT_NO_IMAGES,
    registry_mirror: Optional[str] = OPT_REGISTRY_MIRROR,
    registry_user: Optional[str] = OPT_REGISTRY_USER,
    allow_mirror_drift: bool = OPT_ALLOW_DRIFT,
    split_size: Optional[str] = OPT_SPLIT,
    sign_key: Optional[str] = OPT_SIGN_KEY,
    timeout: float = OPT_TIMEOUT,
    retries: int = OPT_RETRIES,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Resolve and print the plan; download no RPM."
    ),
    no_wait: bool = OPT_NO_WAIT,
    verify_cache: bool = OPT_VERIFY_CACHE,
    as_json: bool = OPT_JSON,
) -> None:
    """Resolve, download and verify Docker CE for CentOS 7 into a checksummed bundle."""

    def body() -> None:
        from .bundle import build
        from .plan import BuildOptions, make_plan

        reporter = ConsoleReporter(quiet=as_json)
        downloader = make_downloader(cache_dir, reporter, timeout, retries, verify_cache)
        reporter.stats = downloader.stats
        opts = BuildOptions.from_cli(
            mirror=_chain(mirror, os_mirror, repo_file, channel, downloader),
            output=output,
            cache_dir=cache_dir,
            arch=arch,
            channel=channel,
            docker_version=docker_version,
            packages=package,
            closure=closure,
            jobs=jobs,
            gpg_keys=gpg_key,
            images=image,
            no_images=no_images,
            registry_mirror=registry_mirror,
            registry_user=registry_user,
            allow_mirror_drift=allow_mirror_drift,
            split_size=split_size,
            no_wait=no_wait,
            sign_key=sign_key,
            warn=_warn,
            baseline_from=baseline_from,
        )
        if dry_run:
            with tempfile.TemporaryDirectory(prefix="airdock-plan-") as tmp:
                plan = make_plan(opts, downloader, Path(tmp), reporter)
            _print_plan(plan, as_json)
            return
        result = build(opts, downloader, reporter)
        summary = _summary(result, opts.mirror.name, opts.arch)
        rpms = reporter.counts.get("RPMs", (0, 0))
        summary["downloads"] = {
            "fetched": downloader.stats.fetched,
            "from_cache": downloader.stats.from_cache,
            "bytes": downloader.stats.network_bytes,
            "rpms": {"downloaded": rpms[0], "from_cache": rpms[1]},
        }
        if as_json:
            typer.echo(json.dumps(summary, indent=2, sort_keys=True))
            return
        signed = f"signed by {opts.signer.fingerprint}" if opts.signer else "unsigned"
        typer.echo(summary_text(result, summary, signed))

    run(body, as_json)


def _size(n: int) -> str:
    """``82.6 KB``, ``1.2 GB`` (decimal units, as the MB figures elsewhere)."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        if value < 1000 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def carry_list(result: BuildResult) -> list[str]:
    """The files an operator carries to the target, named from the BuildResult."""
    from .split import join_file_name

    name = result.tarball.name
    if result.parts:
        return [
            *(p.name for p in result.parts),
            *(f"{p.name}.sha256" for p in result.parts),
            join_file_name(name),
            f"{name}.sha256",
        ]
    return [name, f"{name}.sha256"]


def summary_text(result: BuildResult, summary: dict[str, Any], signed: str) -> str:
    """What happened (sizes, what the counts mean) and what to do next."""
    import shlex

    from .split import join_file_name

    files = result.parts or [result.tarball]
    size = sum(f.stat().st_size for f in files)
    downloads = summary["downloads"]["rpms"]
    rpms = summary["packages"]
    lines = [f"bundle:   {result.folder}/"]
    if result.parts:
        lines.append(
            f"parts:    {plural(len(result.parts), 'part')} of {result.tarball.name} in "
            f"{result.tarball.parent}/, {_size(size)} in all"
        )
    else:
        lines.append(f"tarball:  {result.tarball} ({_size(size)})")
    lines += [
        f"sha256:   {result.tarball_sha256}",
        f"contents: {plural(rpms, 'RPM')} ({downloads['downloaded']} downloaded, "
        f"{downloads['from_cache']} from cache), {plural(summary['images'], 'image')}",
        f"SHA256SUMS sha256: {summary['sha256sums_sha256']} ({signed}: publish it with the "
        "tarball's .sha256 so operators can compare)",
        "",
        "Next: carry these files from " + str(result.tarball.parent) + "/ to the target:",
        "  " + "  ".join(carry_list(result)),
        "then run there:",
    ]
    name = shlex.quote(result.tarball.name)
    if result.parts:
        lines.append(f"  sh {shlex.quote(join_file_name(result.tarball.name))}   "
                     "# checks the parts, re-joins and checks the tarball")  # fmt: skip
    lines += [
        f"  sha256sum -c {name}.sha256 && tar xf {name}",
        f"  cd {shlex.quote(result.folder.name)} && sudo ./install.sh",
    ]
    return "\n".join(lines)


def _summary(result: BuildResult, mirror: str, arch: str) -> dict[str, Any]:
    return {
        "ok": True,
        "bundle": str(result.folder),
        "tarball": str(result.tarball),
        "parts": [str(p) for p in result.parts],
        "carry": carry_list(result),
        "tarball_sha256": result.tarball_sha256,
        "docker_version": result.manifest.docker_version,
        "arch": arch,
        "mirror": mirror,
        "packages": len(result.manifest.packages),
        "images": len(result.manifest.images),
        "sha256sums_sha256": result.sha256sums_sha256,
        "publisher": result.manifest.publisher.fingerprint if result.manifest.publisher else None,
        "baseline": result.manifest.target.baseline,
    }


@app.command("release")
def release_cmd(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(
        None,
        "--config",
        metavar="FILE",
        help="A release.toml giving any option below (flags given here win); its sha256 is "
        "recorded in RELEASES.json.",
    ),
    mirror: Optional[list[str]] = typer.Option(
        None, "--mirror", metavar="NAME|URL", help="Mirror (repeatable): one bundle each."
    ),
    arch: Optional[list[str]] = typer.Option(
        None, "--arch", metavar="x86_64|aarch64", help="Architecture (repeatable); default x86_64."
    ),
    os_mirror: Optional[str] = OPT_OS_MIRROR,
    docker_version: Optional[str] = OPT_DOCKER_VERSION,
    channel: str = OPT_CHANNEL,
    package: Optional[list[str]] = OPT_PACKAGE,
    closure: str = OPT_CLOSURE,
    baseline_from: Optional[Path] = OPT_BASELINE_FROM,
    output: Path = typer.Option(
        Path("bundles"), "--output", metavar="DIR", help="Folder the release is written to."
    ),
    cache_dir: Optional[Path] = OPT_CACHE_DIR,
    jobs: int = OPT_JOBS,
    gpg_key: Optional[list[str]] = OPT_GPG_KEY,
    image: Optional[list[str]] = OPT_IMAGE,
    no_images: bool = OPT_NO_IMAGES,
    registry_mirror: Optional[str] = OPT_REGISTRY_MIRROR,
    registry_user: Optional[str] = OPT_REGISTRY_USER,
    allow_mirror_drift: bool = OPT_ALLOW_DRIFT,
    split_size: Optional[str] = OPT_SPLIT,
    sign_key: Optional[str] = OPT_SIGN_KEY,
    timeout: float = OPT_TIMEOUT,
    retries: int = OPT_RETRIES,
    no_wait: bool = OPT_NO_WAIT,
    verify_cache: bool = OPT_VERIFY_CACHE,
    as_json: bool = OPT_JSON,
) -> None:
    """Build one reproducible bundle per (mirror, arch) and write RELEASES.json/.md."""
    given = dict(ctx.params)

    def body() -> None:
        from .plan import BuildOptions
        from .release import release, release_rows

        values, cfg = _release_values(ctx, given, config)
        mirrors = values["mirror"]
        if not mirrors:
            raise UsageError("give at least one --mirror (or `mirror = [...]` in --config)")
        arches = values["arch"] or ["x86_64"]
        for a in arches:
            check_arch(a)
        reporter = ConsoleReporter(quiet=as_json)
        downloader = make_downloader(
            values["cache_dir"],
            reporter,
            values["timeout"],
            values["retries"],
            values["verify_cache"],
        )
        base = BuildOptions.from_cli(
            mirror=resolve_chain(mirrors[0], values["os_mirror"]),
            output=Path(values["output"]),
            cache_dir=values["cache_dir"],
            arch=arches[0],
            channel=values["channel"],
            docker_version=values["docker_version"],
            packages=values["package"],
            closure=values["closure"],
            jobs=values["jobs"],
            gpg_keys=values["gpg_key"],
            images=values["image"],
            no_images=values["no_images"],
            registry_mirror=values["registry_mirror"],
            registry_user=values["registry_user"],
            allow_mirror_drift=values["allow_mirror_drift"],
            split_size=values["split_size"],
            no_wait=values["no_wait"],
            sign_key=values["sign_key"],
            warn=_warn,
            baseline_from=values["baseline_from"],
        )
        if base.host is not None and base.host.arch and set(arches) != {base.host.arch}:
            raise UsageError(
                f"--baseline-from is a {base.host.arch} host; release only --arch {base.host.arch}"
            )
        entries = release(
            base,
            mirrors,
            arches,
            values["os_mirror"],
            downloader,
            reporter,
            config=cfg.record() if cfg else None,
        )
        rows = release_rows(entries)
        if as_json:
            typer.echo(json.dumps({"ok": True, "artifacts": rows}, indent=2, sort_keys=True))
            return
        for row in rows:
            typer.echo(f"{row['artifact']}  {_size(row['size'])}  sha256 {row['sha256']}")
        typer.echo(f"wrote {base.output / 'RELEASES.json'} and {base.output / 'RELEASES.md'}")

    run(body, as_json)


def _release_values(
    ctx: typer.Context, given: dict[str, Any], config: Path | None
) -> tuple[dict[str, Any], ReleaseConfig | None]:
    """The options of a release: a flag on the command line wins, then the --config file,
    then the option's default."""
    values = {k: v for k, v in given.items() if k not in ("config", "as_json")}
    if config is None:
        return values, None
    from .releaseconfig import load_release_config

    cfg = load_release_config(config)
    for key, value in cfg.values.items():
        source = ctx.get_parameter_source(key)
        if source is None or source.name != "COMMANDLINE":
            values[key] = Path(value) if key in ("output", "cache_dir", "baseline_from") else value
    return values, cfg


@app.command("split")
def split_cmd(
    tarball: Path = typer.Argument(
        ..., metavar="TARBALL", help="A bundle tarball with its .sha256 beside it."
    ),
    size: str = typer.Option(
        ..., "--size", metavar="SIZE", help="Part size, e.g. 3900M for FAT32 or 650M for a CD."
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", metavar="DIR", help="Folder for the parts; default the tarball's folder."
    ),
    as_json: bool = OPT_JSON,
) -> None:
    """Split an existing bundle tarball into parts (checked against its .sha256 first)."""

    def body() -> None:
        from .split import part_size, resplit

        result = resplit(tarball, part_size(size, "--size", _warn), output)
        if as_json:
            summary = {
                "ok": True,
                "tarball": str(result.tarball),
                "tarball_sha256": result.tarball_sha256,
                "parts": [str(p) for p in result.parts],
                "join": str(result.join),
                "sha256_file": str(result.sha256_file),
            }
            typer.echo(json.dumps(summary, indent=2, sort_keys=True))
            return
        for path in result.parts:
            typer.echo(f"part:    {path}")
        typer.echo(f"join:    {result.join}")
        typer.echo(f"sha256:  {result.tarball_sha256}  ({plural(len(result.parts), 'part')})")

    run(body, as_json)


@app.command("diff")
def diff_cmd(
    old: Path = typer.Argument(
        ..., metavar="OLD", help="The older bundle: folder, tarball, a part or NAME.JOIN.txt."
    ),
    new: Path = typer.Argument(
        ..., metavar="NEW", help="The newer bundle: folder, tarball, a part or NAME.JOIN.txt."
    ),
    as_json: bool = OPT_JSON,
) -> None:
    """Show what changed between two bundles: packages, images, size."""

    def body() -> None:
        from .diff import diff_manifests, format_diff, load_manifest

        d = diff_manifests(load_manifest(old), load_manifest(new))
        typer.echo(json.dumps(d, indent=2, sort_keys=True) if as_json else format_diff(d))

    run(body, as_json)


@app.command("verify")
def verify_cmd(
    path: Path = typer.Argument(
        ..., metavar="PATH", help="A bundle folder, its tarball, a part or NAME.JOIN.txt."
    ),
    key: Optional[list[Path]] = typer.Option(
        None, "--key", metavar="FILE", help="The publisher's public key to trust (repeatable)."
    ),
    as_json: bool = OPT_JSON,
) -> None:
    """Check a bundle offline as the target would: checksums, signature, RPMs, images."""

    def body() -> None:
        from .plan import existing_file
        from .verify import verify_path

        bars = _Bars(quiet=as_json)
        report = verify_path(
            path, [existing_file(str(k), "--key") for k in key or []], progress=bars
        )
        if as_json:
            typer.echo(json.dumps(report.as_dict(), indent=2, sort_keys=True))
        else:
            for f in report.findings:
                typer.echo(f"  [{f.status}] {f.name:<18} {one_line(f.message)}")
            typer.echo(f"{report.bundle or path}: {'OK' if report.ok else 'FAILED'} "
                       f"({report.trust})")  # fmt: skip
        if not report.ok:
            raise typer.Exit(1)

    run(body, as_json)


def _print_plan(plan: Plan, as_json: bool) -> None:
    rows = [
        {
            "nevra": p.nevra,
            "repo": p.repo_id,
            "size": p.size,
            "url": p.url,
            "requested": p.requested,
        }
        for p in plan.packages
    ]
    images = [i.describe() for i in plan.images]
    if as_json:
        document = {
            "ok": True,
            "name": plan.name,
            "docker_version": plan.docker_version,
            "baseline": plan.baseline,
            "packages": rows,
            "images": images,
            "keys": [{"name": k.name, "fingerprint": k.fingerprint} for k in plan.pinned_keys],
            "rpm_size": plan.rpm_size,
            "download_size": plan.download_size,
            "filelists": {"read": bool(plan.filelists), "why": plan.filelists},
            "notes": plan.notes,
        }
        typer.echo(json.dumps(document, indent=2))
        return
    typer.echo(
        f"{plan.name}: {plural(len(rows), 'RPM')}, {plural(len(images), 'image')}, "
        f"{_size(plan.download_size)} to download"
    )
    typer.echo(
        f"filelists: read ({'; '.join(plan.filelists)})"
        if plan.filelists
        else "filelists: not read (no file dependency of this answer needs them)"
    )
    for note in plan.notes:
        typer.echo(f"note: {note}")
    for row in rows:
        typer.echo(f"  {row['nevra']:<60} {row['repo']}")
    for image in images:
        typer.echo(
            f"  {image['reference']} ({image['platform']}) -> {image['manifest_digest']}, "
            f"{_size(image['size'])}"
        )


@app.command("versions")
def versions_cmd(
    mirror: str = typer.Option(
        "docker", "--mirror", metavar="NAME|URL", help="Preset name or URL prefix."
    ),
    arch: str = OPT_ARCH,
    channel: str = OPT_CHANNEL,
    cache_dir: Optional[Path] = OPT_CACHE_DIR,
    as_json: bool = OPT_JSON,
) -> None:
    """List the docker-ce versions the mirror really has, newest first."""

    def body() -> None:
        from .plan import BuildOptions, default_cache_dir, list_versions

        opts = BuildOptions(
            mirror=resolve_chain(mirror),
            output=Path("."),
            cache_dir=cache_dir or default_cache_dir(),
            arch=check_arch(arch),
            channel=check_channel(channel),
        )
        with tempfile.TemporaryDirectory(prefix="airdock-versions-") as tmp:
            found = list_versions(opts, make_downloader(opts.cache_dir), Path(tmp))
        typer.echo(json.dumps(found) if as_json else "\n".join(found))

    run(body, as_json)


@app.command("mirrors")
def mirrors_cmd(as_json: bool = OPT_JSON) -> None:
    """Show the mirror presets with their docker-ce and CentOS-vault URLs."""
    rows = [{"name": m.name, "docker_ce": m.docker_ce, "os": m.os} for m in PRESETS.values()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        typer.echo(f"{row['name']:<12} {row['docker_ce']:<48} {row['os']}")


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through the build's cleanup like Ctrl-C


def main() -> None:
    """The console script: with --json, even a usage error (unknown option, bad value) is a
    JSON error object on stdout."""
    signal.signal(signal.SIGTERM, _terminate)
    if "--json" not in sys.argv[1:]:
        app(prog_name="airdock")
        return
    try:
        code = app(prog_name="airdock", standalone_mode=False)
    except Exception as exc:  # click's UsageError/BadParameter (typer may vendor click)
        if type(exc).__name__ == "Abort":
            code = fail("interrupted; nothing was written under a final name", 130, True).exit_code
        elif hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            command = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else ""
            fix = f"see `airdock {command} --help`".replace("  ", " ")
            code = fail(f"{exc.format_message()}; {fix}", exc.exit_code, True).exit_code
        else:
            raise
    sys.exit(code if isinstance(code, int) else 0)


# -- fleet-report (the Ansible playbook's report; builder/fleet.py) ----------------------------
@app.command("fleet-report")
def fleet_report_cmd(
    report: Path = typer.Argument(
        ..., help="airdock-fleet-report.json written by ansible/airdock.yml."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the validated report as JSON."),
) -> None:
    """Print the fleet report's table (Markdown) for a change ticket; exit 1 if a host failed."""
    from dataclasses import asdict

    from .fleet import load_report, render_markdown

    loaded = run(lambda: load_report(report))
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in loaded.rows], indent=2))
    else:
        typer.echo(render_markdown(loaded), nl=False)
    raise typer.Exit(1 if loaded.failed else 0)


if __name__ == "__main__":
    main()
