"""The ``airdock`` command line: option parsing and printing only.

Behaviour lives in the library modules (bundle, resolve, download, …); this
module turns options into a BuildOptions, owns the progress bars, and turns an
AirdockError into one ``Error:`` line on stderr with a non-zero exit code.
Tracebacks are shown only with ``--debug``.
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import typer
from tqdm import tqdm

from . import __version__
from .bundle import BuildResult, build
from .diff import diff_manifests, format_diff, load_manifest
from .download import DEFAULT_TIMEOUT, Cache, Downloader
from .errors import AirdockError, UsageError
from .mirrors import (
    PRESETS,
    MirrorChain,
    check_arch,
    check_channel,
    mirror_from_repo_file,
    resolve_chain,
)
from .names import one_line
from .plan import (
    DEFAULT_IMAGES,
    DEFAULT_PACKAGES,
    BuildOptions,
    Plan,
    Reporter,
    default_cache_dir,
    existing_file,
    list_versions,
    make_plan,
)
from .release import release, release_rows
from .split import part_size, resplit

if TYPE_CHECKING:
    pass

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Bundle Docker CE, its CentOS 7 dependencies and images for air-gapped hosts.",
)

T = TypeVar("T")
DEBUG = False


class ConsoleReporter(Reporter):
    """Steps as lines on stderr, downloads as one tqdm bar (only on a terminal)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: tqdm | None = None

    def step(self, message: str) -> None:
        if not self.quiet:
            typer.echo(f"==> {one_line(message)}", err=True)

    def bytes_started(self, label: str, total: int) -> None:
        self.bar = tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=label,
            leave=False,
            disable=self.quiet or not sys.stderr.isatty(),
            file=sys.stderr,
        )

    def bytes_advanced(self, count: int) -> None:
        if self.bar is not None:
            self.bar.update(count)

    def bytes_finished(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run(action: Callable[[], T]) -> T:
    """Run a command body, turning AirdockError into one line and an exit code."""
    try:
        return action()
    except AirdockError as exc:
        if DEBUG:
            raise
        typer.echo(f"Error: {one_line(str(exc))}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except OSError as exc:  # the machine said no: permissions, a full disk, a file in the way
        if DEBUG:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        typer.echo(
            one_line(
                f"Error: {exc.strerror or exc}{where}; check the path, its permissions and free "
                "space (nothing was written under a final name)"
            ),
            err=True,
        )
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("Error: interrupted; nothing was written under a final name", err=True)
        raise typer.Exit(130) from None


def make_downloader(
    cache_dir: Path | None,
    reporter: Reporter | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = 3,
    verify_cache: bool = False,
) -> Downloader:
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


# Options shared by `build` and `release` (typer reads the defaults; one definition each).
OPT_OS_MIRROR = typer.Option(
    None,
    "--os-mirror",
    metavar="NAME|URL",
    help="Preset or URL prefix replacing https://vault.centos.org.",
)
OPT_DOCKER_VERSION = typer.Option(
    None, "--docker-version", metavar="VERSION", help="docker-ce version; default newest."
)
OPT_CHANNEL = typer.Option(
    "stable", metavar="CHANNEL", help="docker-ce channel: stable, test, nightly."
)
OPT_PACKAGE = typer.Option(
    None,
    "--package",
    metavar="NAME",
    help=f"Package to install (repeatable); default: {' '.join(DEFAULT_PACKAGES)}.",
)
OPT_CLOSURE = typer.Option(
    "minimal",
    metavar="minimal|full",
    help="minimal: what a CentOS 7.9 @core host lacks; full: the whole dependency closure.",
)
OPT_OUTPUT = typer.Option(Path("bundles"), metavar="DIR", help="Folder the bundle is written to.")
OPT_CACHE_DIR = typer.Option(
    None, "--cache-dir", metavar="DIR", help="Download cache; default ~/.cache/airdock."
)
OPT_JOBS = typer.Option(4, metavar="N", help="Parallel downloads.")
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
    help="Registry user; password from AIRDOCK_REGISTRY_PASSWORD.",
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
OPT_JSON = typer.Option(False, "--json", help="Machine-readable summary on stdout.")
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
        metavar="NAME|URL[,…]",
        help="Preset name or URL prefix replacing https://download.docker.com; "
        "a,b = per-file fallback. Default: docker.",
    ),
    os_mirror: Optional[str] = OPT_OS_MIRROR,
    repo_file: Optional[str] = typer.Option(
        None,
        "--repo-file",
        metavar="PATH|URL",
        help="A docker-ce.repo file (path or URL) giving the baseurl.",
    ),
    docker_version: Optional[str] = OPT_DOCKER_VERSION,
    arch: str = typer.Option(
        "x86_64", metavar="ARCH", help="Target architecture: x86_64 or aarch64."
    ),
    channel: str = OPT_CHANNEL,
    package: Optional[list[str]] = OPT_PACKAGE,
    closure: str = OPT_CLOSURE,
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
        reporter = ConsoleReporter(quiet=as_json)
        downloader = make_downloader(cache_dir, reporter, timeout, retries, verify_cache)
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
        )
        if dry_run:
            with tempfile.TemporaryDirectory(prefix="airdock-plan-") as tmp:
                plan = make_plan(opts, downloader, Path(tmp), reporter)
            _print_plan(plan, as_json)
            return
        result = build(opts, downloader, reporter)
        summary = _summary(result, opts.mirror.name, opts.arch)
        summary["downloads"] = {
            "fetched": downloader.stats.fetched,
            "from_cache": downloader.stats.from_cache,
            "bytes": downloader.stats.network_bytes,
        }
        if as_json:
            typer.echo(json.dumps(summary, indent=2, sort_keys=True))
            return
        typer.echo(f"bundle:  {result.folder}/")
        for path in result.parts or [result.tarball]:
            typer.echo(f"{'part' if result.parts else 'tarball'}: {path}")
        typer.echo(
            f"sha256:  {result.tarball_sha256}  ({summary['packages']} RPMs, "
            f"{summary['images']} image(s); {downloader.stats.fetched} downloaded, "
            f"{downloader.stats.from_cache} from cache)"
        )
        signed = f"signed by {opts.signer.fingerprint}" if opts.signer else "unsigned"
        typer.echo(f"SHA256SUMS sha256: {summary['sha256sums_sha256']}  ({signed}: publish it "
                   "with the tarball's .sha256 so operators can compare)")  # fmt: skip

    run(body)


def _summary(result: BuildResult, mirror: str, arch: str) -> dict[str, Any]:
    return {
        "bundle": str(result.folder),
        "tarball": str(result.tarball),
        "parts": [str(p) for p in result.parts],
        "tarball_sha256": result.tarball_sha256,
        "docker_version": result.manifest.docker_version,
        "arch": arch,
        "mirror": mirror,
        "packages": len(result.manifest.packages),
        "images": len(result.manifest.images),
        "sha256sums_sha256": result.sha256sums_sha256,
        "publisher": result.manifest.publisher.fingerprint if result.manifest.publisher else None,
    }


@app.command("release")
def release_cmd(
    mirror: list[str] = typer.Option(
        ..., "--mirror", metavar="NAME|URL", help="Mirror (repeatable): one bundle each."
    ),
    arch: list[str] = typer.Option(
        ["x86_64"], "--arch", metavar="ARCH", help="Architecture (repeatable)."
    ),
    os_mirror: Optional[str] = OPT_OS_MIRROR,
    docker_version: Optional[str] = OPT_DOCKER_VERSION,
    channel: str = OPT_CHANNEL,
    package: Optional[list[str]] = OPT_PACKAGE,
    closure: str = OPT_CLOSURE,
    output: Path = typer.Option(Path("bundles"), help="Folder the release is written to."),
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

    def body() -> None:
        reporter = ConsoleReporter(quiet=as_json)
        downloader = make_downloader(cache_dir, reporter, timeout, retries, verify_cache)
        for a in arch:
            check_arch(a)
        base = BuildOptions.from_cli(
            mirror=resolve_chain(mirror[0], os_mirror),
            output=output,
            cache_dir=cache_dir,
            arch=arch[0],
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
        )
        entries = release(base, mirror, arch, os_mirror, downloader, reporter)
        rows = release_rows(entries)
        if as_json:
            typer.echo(json.dumps({"artifacts": rows}, indent=2, sort_keys=True))
            return
        for row in rows:
            typer.echo(f"{row['artifact']}  {row['size'] / 1e6:.1f} MB  sha256 {row['sha256']}")
        typer.echo(f"wrote {output / 'RELEASES.json'} and {output / 'RELEASES.md'}")

    run(body)


@app.command("split")
def split_cmd(
    tarball: Path = typer.Argument(..., help="A bundle tarball with its .sha256 beside it."),
    size: str = typer.Option(
        ..., "--size", metavar="SIZE", help="Part size, e.g. 3900M for FAT32 or 650M for a CD."
    ),
    output: Optional[Path] = typer.Option(
        None, metavar="DIR", help="Folder for the parts; default the tarball's folder."
    ),
    as_json: bool = OPT_JSON,
) -> None:
    """Split an existing bundle tarball into parts (checked against its .sha256 first)."""

    def body() -> None:
        result = resplit(tarball, part_size(size, "--size", _warn), output)
        if as_json:
            summary = {
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
        typer.echo(f"sha256:  {result.tarball_sha256}  ({len(result.parts)} parts)")

    run(body)


@app.command("diff")
def diff_cmd(
    old: Path = typer.Argument(..., help="The older bundle folder."),
    new: Path = typer.Argument(..., help="The newer bundle folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show what changed between two bundles: packages, images, size."""

    def body() -> None:
        d = diff_manifests(load_manifest(old), load_manifest(new))
        typer.echo(json.dumps(d, indent=2, sort_keys=True) if as_json else format_diff(d))

    run(body)


@app.command("verify")
def verify_cmd(
    path: Path = typer.Argument(..., help="A bundle folder, its tarball, a part or JOIN.txt."),
    key: Optional[list[Path]] = typer.Option(
        None, "--key", metavar="FILE", help="The publisher's public key to trust (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Check a bundle offline as the target would: checksums, signature, RPMs, images."""
    from .verify import verify_path

    def body() -> None:
        report = verify_path(path, [existing_file(str(k), "--key") for k in key or []])
        if as_json:
            typer.echo(json.dumps(report.as_dict(), indent=2, sort_keys=True))
        else:
            for f in report.findings:
                typer.echo(f"  [{f.status}] {f.name:<18} {one_line(f.message)}")
            typer.echo(f"{report.bundle or path}: {'OK' if report.ok else 'FAILED'} "
                       f"({report.trust})")  # fmt: skip
        if not report.ok:
            raise typer.Exit(1)

    run(body)


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
            "name": plan.name,
            "docker_version": plan.docker_version,
            "baseline": plan.baseline,
            "packages": rows,
            "images": images,
            "keys": [{"name": k.name, "fingerprint": k.fingerprint} for k in plan.pinned_keys],
            "rpm_size": plan.rpm_size,
            "download_size": plan.download_size,
        }
        typer.echo(json.dumps(document, indent=2))
        return
    typer.echo(
        f"{plan.name}: {len(rows)} RPMs, {len(images)} image(s), "
        f"{plan.download_size / 1e6:.1f} MB to download"
    )
    for row in rows:
        typer.echo(f"  {row['nevra']:<60} {row['repo']}")
    for image in images:
        typer.echo(
            f"  {image['reference']} ({image['platform']}) -> {image['manifest_digest']}, "
            f"{image['size'] / 1e6:.1f} MB"
        )


@app.command("versions")
def versions_cmd(
    mirror: str = typer.Option("docker", help="Preset name or URL prefix."),
    arch: str = typer.Option("x86_64", help="x86_64 or aarch64."),
    channel: str = typer.Option("stable", help="stable, test or nightly."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir"),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
) -> None:
    """List the docker-ce versions the mirror really has, newest first."""

    def body() -> None:
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

    run(body)


@app.command("mirrors")
def mirrors_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
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
    signal.signal(signal.SIGTERM, _terminate)
    app(prog_name="airdock")


if __name__ == "__main__":
    main()
