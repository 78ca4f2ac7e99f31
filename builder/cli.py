"""The ``airdock`` command line: option parsing and printing only.

Behaviour lives in the library modules (bundle, resolve, download, …); this
module turns options into a BuildOptions, owns the progress bars, and turns an
AirdockError into one ``Error:`` line on stderr with a non-zero exit code.
Tracebacks are shown only with ``--debug``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Optional, TypeVar

import typer
from tqdm import tqdm

from . import __version__
from .bundle import (
    DEFAULT_IMAGES,
    DEFAULT_PACKAGES,
    BuildOptions,
    Reporter,
    build,
    list_versions,
    make_plan,
)
from .download import Cache, Downloader
from .errors import AirdockError, UsageError
from .mirrors import PRESETS, check_arch, check_channel, resolve_mirror

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Bundle Docker CE, its CentOS 7 dependencies and images for air-gapped hosts.",
)

T = TypeVar("T")
DEBUG = False


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "airdock"


class ConsoleReporter(Reporter):
    """Steps as lines on stderr, downloads as one tqdm bar (only on a terminal)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: tqdm | None = None

    def step(self, message: str) -> None:
        if not self.quiet:
            typer.echo(f"==> {message}", err=True)

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
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("Error: interrupted; nothing was written under a final name", err=True)
        raise typer.Exit(130) from None


def make_downloader(cache_dir: Path | None, reporter: Reporter | None = None) -> Downloader:
    cache = Cache(cache_dir or default_cache_dir())
    return Downloader(
        cache,
        on_progress=reporter.bytes_advanced if reporter else None,
        user_agent=f"airdock/{__version__}",
    )


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    global DEBUG
    DEBUG = debug
    if version:
        typer.echo(f"airdock {__version__}")
        raise typer.Exit(0)


@app.command("build")
def build_cmd(
    mirror: str = typer.Option(
        "docker", help="Preset name or URL prefix replacing https://download.docker.com."
    ),
    os_mirror: Optional[str] = typer.Option(
        None, "--os-mirror", help="Preset or URL prefix replacing https://vault.centos.org."
    ),
    docker_version: Optional[str] = typer.Option(
        None, "--docker-version", help="docker-ce version; default newest."
    ),
    arch: str = typer.Option("x86_64", help="Target architecture: x86_64 or aarch64."),
    channel: str = typer.Option("stable", help="docker-ce channel: stable, test, nightly."),
    package: Optional[list[str]] = typer.Option(
        None,
        "--package",
        help=f"Package to install (repeatable); default: {' '.join(DEFAULT_PACKAGES)}.",
    ),
    closure: str = typer.Option(
        "minimal",
        help="minimal: what a CentOS 7.9 @core host lacks; full: the whole dependency closure.",
    ),
    output: Path = typer.Option(Path("bundles"), help="Folder the bundle is written to."),
    cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir", help="Download cache; default ~/.cache/airdock."
    ),
    jobs: int = typer.Option(4, help="Parallel downloads."),
    gpg_key: Optional[list[str]] = typer.Option(
        None,
        "--gpg-key",
        help="Extra trusted OpenPGP public key file (repeatable), for "
        "private mirrors; Docker's and CentOS's keys are built in.",
    ),
    image: Optional[list[str]] = typer.Option(
        None, "--image", help=f"Image to bundle (repeatable); default {' '.join(DEFAULT_IMAGES)}."
    ),
    no_images: bool = typer.Option(False, "--no-images", help="Bundle no images."),
    registry_mirror: Optional[str] = typer.Option(
        None, "--registry-mirror", help="Pull-through mirror URL for Docker Hub images."
    ),
    registry_user: Optional[str] = typer.Option(
        None, "--registry-user", help="Registry user; password from AIRDOCK_REGISTRY_PASSWORD."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Resolve and print the plan; download no RPM."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable summary on stdout."),
) -> None:
    """Resolve, download and verify Docker CE for CentOS 7 into a checksummed bundle."""

    def body() -> None:
        if jobs < 1:
            raise UsageError(f"--jobs {jobs} must be at least 1")
        reporter = ConsoleReporter(quiet=as_json)
        opts = BuildOptions(
            mirror=resolve_mirror(mirror, os_mirror),
            output=output,
            cache_dir=cache_dir or default_cache_dir(),
            arch=check_arch(arch),
            channel=check_channel(channel),
            docker_version=docker_version,
            packages=tuple(package or DEFAULT_PACKAGES),
            closure=closure,
            jobs=jobs,
            gpg_keys=[_existing_file(k, "--gpg-key") for k in gpg_key or []],
            images=() if no_images else tuple(image or DEFAULT_IMAGES),
            registry_options=_registry_options(registry_mirror, registry_user),
        )
        downloader = make_downloader(opts.cache_dir, reporter)
        if dry_run:
            with tempfile.TemporaryDirectory(prefix="airdock-plan-") as tmp:
                plan = make_plan(opts, downloader, Path(tmp), reporter)
            _print_plan(plan, as_json)
            return
        result = build(opts, downloader, reporter)
        summary = {
            "bundle": str(result.folder),
            "tarball": str(result.tarball),
            "tarball_sha256": result.tarball_sha256,
            "docker_version": result.manifest["docker_version"],
            "arch": opts.arch,
            "mirror": opts.mirror.name,
            "packages": len(result.manifest["packages"]),
            "images": len(result.manifest["images"]),
            "downloads": {
                "fetched": downloader.stats.fetched,
                "from_cache": downloader.stats.from_cache,
                "bytes": downloader.stats.network_bytes,
            },
        }
        if as_json:
            typer.echo(json.dumps(summary, indent=2, sort_keys=True))
        else:
            typer.echo(f"bundle:  {result.folder}/")
            typer.echo(f"tarball: {result.tarball} (sha256 {result.tarball_sha256})")
            typer.echo(
                f"         {summary['packages']} RPMs, {summary['images']} image(s); "
                f"{downloader.stats.fetched} downloaded, "
                f"{downloader.stats.from_cache} from cache"
            )

    run(body)


def _existing_file(value: str, option: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise UsageError(f"{option} {value}: no such file; give the path of a public key file")
    return path


def _registry_options(registry_mirror: str | None, user: str | None) -> object | None:
    if registry_mirror is None and user is None:
        return None
    from .images import RegistryOptions

    password = os.environ.get("AIRDOCK_REGISTRY_PASSWORD")
    if user and not password:
        raise UsageError(
            "--registry-user needs the password in the environment variable "
            "AIRDOCK_REGISTRY_PASSWORD"
        )
    return RegistryOptions(registry_mirror=registry_mirror, username=user, password=password)


def _print_plan(plan, as_json: bool) -> None:
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
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "name": plan.name,
                    "docker_version": plan.docker_version,
                    "baseline": plan.baseline,
                    "packages": rows,
                    "download_size": plan.download_size,
                },
                indent=2,
            )
        )
        return
    typer.echo(f"{plan.name}: {len(rows)} RPMs, {plan.download_size / 1e6:.1f} MB")
    for row in rows:
        typer.echo(f"  {row['nevra']:<60} {row['repo']}")


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
            mirror=resolve_mirror(mirror),
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


def main() -> None:
    app(prog_name="airdock")


if __name__ == "__main__":
    main()
