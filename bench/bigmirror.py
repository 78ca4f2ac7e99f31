"""The bench's realistic mirror: the fixture mirror's dependency graph at the real el7 sizes.

Built once and cached under ``.cache/bench-mirror/<hash>/`` (the hash covers this file and
the fixture mirror it starts from):

* the newest Docker packages carry incompressible (random) payloads of the real el7 sizes
  (containerd.io 35 MB, docker-ce 25, docker-ce-cli 14, buildx 14, compose 13,
  rootless-extras 9) and every CentOS package a minimal build pulls in carries ~170 kB,
  so the 18 RPMs of a minimal build hold 112 MB of payload;
* the ``os`` repo gets 10,000 more entries (``bench-filler-NNNNN``, one rpmbuild run with
  10,000 sub-packages, no files), so its primary/filelists/other and the solver's work are
  of the real size; createrepo_c indexes all of it (with the comps ``core`` group);
* the rebuilt RPMs are signed with the fixture's keys (``rpmsign --addsign --rpmv3``), like
  the test mirror; the fillers are not (10,000 gpg runs would take minutes, and no build ever
  downloads one).

Payload compression is ``w0.gzdio`` (gzip, stored blocks): random bytes do not compress, so
xz would spend ~10 s per build of the mirror to gain nothing, while the bytes on the wire and
every digest stay those of an incompressible RPM of that size. Nothing in either pipeline
decompresses a payload (``rpm -K`` and airdock check digests and signatures over the
compressed bytes), so the choice does not change what is measured.

Also cached: a dnf installroot holding ``@core`` from this mirror's ``os`` repo (the classic
toolchain's ``dnf download --resolve`` resolves against it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from tests.rig.dnfroot import DnfRoot
from tests.rig.mirror import (
    CENTOS_UID,
    DOCKER_UID,
    FixtureMirror,
    Pkg,
    _spec,
    cached_fixture_mirror,
    createrepo,
    repo_relpath,
    rpm_env,
    sign_rpms,
    write_comps,
)
from tests.rig.tools import run

REPO_TOP = Path(__file__).resolve().parents[1]
CACHE_ROOT = REPO_TOP / ".cache" / "bench-mirror"
MB = 1_000_000

# The newest Docker packages' payloads (real el7 sizes of docker-ce 26.1.4's set).
DOCKER_SIZES = {
    "containerd.io": 35 * MB,
    "docker-ce": 25 * MB,
    "docker-ce-cli": 14 * MB,
    "docker-buildx-plugin": 14 * MB,
    "docker-compose-plugin": 13 * MB,
    "docker-ce-rootless-extras": 9 * MB,
}
# The CentOS packages a minimal build of the fixture mirror pulls in: (repo, name).
CENTOS_DEPS = (
    ("os", "audit-libs-python"),
    ("os", "checkpolicy"),
    ("os", "libcgroup"),
    ("os", "libsemanage-python"),
    ("os", "python-IPy"),
    ("os", "setools-libs"),
    ("updates", "policycoreutils"),
    ("updates", "policycoreutils-python"),
    ("extras", "container-selinux"),
    ("extras", "fuse-overlayfs"),
    ("extras", "fuse3-libs"),
    ("extras", "slirp4netns"),
)
PAYLOAD_TOTAL = 112 * MB
DEP_SIZE = (PAYLOAD_TOTAL - sum(DOCKER_SIZES.values())) // len(CENTOS_DEPS)  # ~167 kB
FILLERS = 10_000
PAYLOAD_MACRO = "w0.gzdio"


@dataclass(frozen=True)
class BenchMirror:
    path: Path
    fixture: FixtureMirror

    @property
    def root(self) -> Path:
        return self.path / "root"

    @property
    def keys(self) -> list[Path]:
        return [self.path / "keys" / "docker.asc", self.path / "keys" / "centos.asc"]

    @property
    def core_root(self) -> Path:
        """A dnf installroot with ``@core`` installed (never modified by the bench)."""
        return self.path / "core-root"

    def repo_dir(self, repo: str) -> Path:
        return self.root / repo_relpath(repo, "x86_64")


def _payload_path(name: str) -> str:
    return f"/usr/libexec/airdock-bench/{name}.bin"


def _build_payload_rpm(pkg: Pkg, size: int, outdir: Path, workdir: Path) -> Path:
    """``pkg`` with one extra file of ``size`` random bytes, built by rpmbuild."""
    payload = _payload_path(pkg.name)
    pkg = replace(pkg, files={**pkg.files, payload: ""})
    with tempfile.TemporaryDirectory(prefix="bench-rpmbuild-", dir=workdir) as tmp:
        top = Path(tmp)
        stage = top / "stage"
        for path, content in pkg.files.items():
            target = stage / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if path == payload:
                with open(target, "wb") as out:
                    left = size
                    while left:
                        out.write(os.urandom(min(left, 1 << 20)))
                        left -= min(left, 1 << 20)
            else:
                target.write_text(content)
        spec = top / f"{pkg.name}.spec"
        spec.write_text(_spec(pkg, stage))
        arch_args = ["--target", pkg.arch] if pkg.arch != "noarch" else []
        _rpmbuild(top, outdir, [*arch_args, str(spec)])
    built = outdir / pkg.filename
    if not built.exists():
        raise AssertionError(f"rpmbuild did not produce {built}")
    return built


def _rpmbuild(top: Path, rpmdir: Path, args: list[str]) -> None:
    """rpmbuild in a private topdir and HOME, with the bench's payload compression."""
    run(
        [
            "rpmbuild",
            "-bb",
            "--quiet",
            "--define",
            f"_topdir {top / 'top'}",
            "--define",
            f"_rpmdir {rpmdir}",
            "--define",
            f"_binary_payload {PAYLOAD_MACRO}",
            *args,
        ],
        env=rpm_env(top / "home"),
    )


def _filler_spec(count: int) -> str:
    lines = [
        "Name: bench-filler",
        "Version: 1.0",
        "Release: 1.el7",
        "Summary: bench filler",
        "License: MIT",
        "AutoReqProv: no",
        "BuildArch: noarch",
        "",
        "%description",
        "Bench filler.",
        "",
    ]
    for i in range(count):
        name = f"bench-filler-{i:05d}"
        lines += [
            f"%package -n {name}",
            f"Summary: {name}, one of the os repo's many entries",
            f"Provides: bench-filler-cap-{i}",
            "Requires: glibc",
            "",
            f"%description -n {name}",
            f"{name}.",
            "",
            f"%files -n {name}",
            "",
        ]
    return "\n".join(lines) + "\n"


def _build_fillers(outdir: Path, workdir: Path, count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-fillers-", dir=workdir) as tmp:
        top = Path(tmp)
        spec = top / "fillers.spec"
        spec.write_text(_filler_spec(count))
        _rpmbuild(top, top / "rpms", [str(spec)])
        outdir.mkdir(parents=True, exist_ok=True)
        for rpm in (top / "rpms").rglob("bench-filler-*.rpm"):
            rpm.rename(outdir / rpm.name)


def _build_into(tmp: Path, fixture: FixtureMirror) -> None:
    root = tmp / "root"
    shutil.copytree(fixture.root, root)
    (tmp / "keys").mkdir()
    shutil.copyfile(fixture.key_file, tmp / "keys" / "docker.asc")
    shutil.copyfile(fixture.centos_key_file, tmp / "keys" / "centos.asc")

    jobs: list[tuple[Pkg, int, Path, str]] = []
    for name, size in DOCKER_SIZES.items():
        pkg = fixture.pkg("docker-ce-stable", "x86_64", name)
        jobs.append((pkg, size, root / repo_relpath("docker-ce-stable", "x86_64"), DOCKER_UID))
    for repo, name in CENTOS_DEPS:
        pkg = fixture.pkg(repo, "x86_64", name)
        jobs.append((pkg, DEP_SIZE, root / repo_relpath(repo, "x86_64"), CENTOS_UID))
    for pkg, _, repo_dir, _ in jobs:
        (repo_dir / "Packages" / pkg.filename).unlink()

    with ThreadPoolExecutor(max_workers=2) as pool:
        fillers = pool.submit(
            _build_fillers, root / repo_relpath("os", "x86_64") / "Packages", tmp, FILLERS
        )
        built = list(
            pool.map(lambda j: _build_payload_rpm(j[0], j[1], j[2] / "Packages", tmp), jobs)
        )
        fillers.result()
    for uid in (DOCKER_UID, CENTOS_UID):
        sign_rpms([b for b, j in zip(built, jobs) if j[3] == uid], fixture.gnupghome, uid)

    comps = write_comps(tmp / "comps.xml")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(createrepo, root / repo_relpath(r, "x86_64"), comps if r == "os" else None)
            for r in ("os", "updates", "extras", "docker-ce-stable")
        ]
        for f in futures:
            f.result()
    (tmp / "comps.xml").unlink()


def _core_root(mirror: BenchMirror) -> None:
    """``dnf groupinstall core`` from the os repo (file:// URL) into ``core-root``."""
    work = Path(tempfile.mkdtemp(prefix=".core-root-", dir=mirror.path))
    dnf = DnfRoot(
        work / "root",
        {"os": mirror.repo_dir("os").as_uri() + "/"},
        mirror.keys,
        workdir=work / "dnf",
    )
    dnf.import_keys()
    dnf.install_group_core()
    try:
        (work / "root").rename(mirror.core_root)
    except OSError:
        if not mirror.core_root.exists():  # lost a race to a concurrent bench: use its root
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _source_hash(fixture: FixtureMirror) -> str:
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(str(fixture.path).encode())
    return digest.hexdigest()[:16]


def cached_bench_mirror(cache_root: Path = CACHE_ROOT) -> BenchMirror:
    """The bench mirror, built on first use (a few minutes on 2 cores) and cached."""
    fixture = cached_fixture_mirror(("x86_64",))
    dest = cache_root / _source_hash(fixture)
    if not (dest / "mirror.json").exists():
        cache_root.mkdir(parents=True, exist_ok=True)
        for stale in cache_root.glob(".tmp-*"):  # interrupted builds, older than an hour
            if time.time() - stale.stat().st_mtime > 3600:
                shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_root))
        try:
            _build_into(tmp, fixture)
            (tmp / "mirror.json").write_text(
                json.dumps({"fillers": FILLERS, "payload_total": PAYLOAD_TOTAL}, indent=2)
            )
            try:
                tmp.rename(dest)
            except OSError:
                if not (dest / "mirror.json").exists():  # lost a race: use the other tree
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    mirror = BenchMirror(dest, fixture)
    if not mirror.core_root.exists():
        _core_root(mirror)
    return mirror


def main() -> None:
    mirror = cached_bench_mirror()
    size = subprocess.run(["du", "-sh", str(mirror.root)], capture_output=True, text=True)
    print(mirror.path, size.stdout.split()[0])


if __name__ == "__main__":
    main()
