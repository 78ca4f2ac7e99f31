"""The classic toolchain a user would script instead of airdock, step by step, timed.

    dnf --installroot=<@core root> download --resolve  ->  rpm -K  ->  createrepo_c
        ->  sha256sum  ->  tar czf (or tar -I pigz)

One ``Classic`` is one user's working folder: the first ``run`` is a cold build (empty dnf
cache), a second ``run`` on the same folder is the warm rebuild (dnf's cache kept with
``keepcache=1``; ``metadata_expire=0`` so dnf asks the mirror whether anything changed, as
airdock does, rather than trusting a 48-hour-old answer). The archive step is timed twice on
the same folder, with gzip and with pigz, so both variants share the download.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.rig.mirror import RPMMACROS

PACKAGES = (
    "docker-ce",
    "docker-ce-cli",
    "containerd.io",
    "docker-buildx-plugin",
    "docker-compose-plugin",
)
REPOS = {
    "os": "centos-vault/7.9.2009/os/x86_64",
    "updates": "centos-vault/7.9.2009/updates/x86_64",
    "extras": "centos-vault/7.9.2009/extras/x86_64",
    "docker-ce-stable": "docker-ce/linux/centos/7/x86_64/stable",
}


@dataclass
class StepTimes:
    steps: dict[str, float] = field(default_factory=dict)
    dnf_rss_mb: float = 0.0

    def total(self, archiver: str) -> float:
        """Wall time of the pipeline ending with ``archiver`` ("gzip" or "pigz")."""
        common = sum(v for k, v in self.steps.items() if not k.startswith("tar "))
        return common + self.steps[f"tar {archiver}"]


def _timed(
    cmd: list[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdout: int | None = subprocess.DEVNULL,
) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of ``cmd``; raises with its stderr when it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=stdout, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{cmd[0]} failed: {' | '.join(tail)}")
    return seconds, usage.ru_maxrss / 1024


class Classic:
    def __init__(self, work: Path, core_root: Path, keys: list[Path], base_url: str) -> None:
        self.work = work
        self.root = work / "root"
        shutil.copytree(core_root, self.root, symlinks=True)
        (work / "repos.d").mkdir(parents=True)
        gpgkeys = " ".join(k.resolve().as_uri() for k in keys)
        (work / "repos.d" / "bench.repo").write_text(
            "\n".join(
                f"[{rid}]\nname={rid}\nbaseurl={base_url}/{path}/\nenabled=1\ngpgcheck=1\n"
                f"gpgkey={gpgkeys}\nmetadata_expire=0\n"
                for rid, path in REPOS.items()
            )
        )
        (work / "dnf.conf").write_text(
            "[main]\ngpgcheck=1\nkeepcache=1\nmetadata_expire=0\ninstall_weak_deps=False\n"
            "skip_if_unavailable=False\nplugins=1\n"
        )
        self.keydb = work / "keydb"
        self.keydb.mkdir()
        for key in keys:  # the build host trusts the vendors' keys before the script runs
            subprocess.run(
                ["rpmkeys", "--dbpath", str(self.keydb), "--import", str(key)],
                check=True,
                capture_output=True,
            )
        self.bundle = work / "bundle"
        # the rig's rpm macros (the installroot's rpmdb is at /var/lib/rpm, not Debian's default)
        (work / ".rpmmacros").write_text(RPMMACROS)
        self.env = {**os.environ, "LC_ALL": "C.UTF-8", "HOME": str(work)}

    def run(self) -> StepTimes:
        t = StepTimes()
        rpms = self.bundle / "rpms"
        rpms.mkdir(parents=True, exist_ok=True)
        dnf = [
            "dnf",
            "-y",
            "-q",
            f"--installroot={self.root}",
            "--releasever=7",
            f"--config={self.work / 'dnf.conf'}",
            f"--setopt=reposdir={self.work / 'repos.d'}",
            f"--setopt=cachedir={self.work / 'cache'}",
            "download",
            "--resolve",
            f"--destdir={rpms}",
            *PACKAGES,
        ]
        t.steps["dnf download --resolve"], t.dnf_rss_mb = _timed(dnf, env=self.env)
        files = sorted(str(p) for p in rpms.glob("*.rpm"))
        t.steps["rpm -K"], _ = _timed(["rpm", "--dbpath", str(self.keydb), "-K", *files])
        t.steps["createrepo_c"], _ = _timed(["createrepo_c", "--quiet", str(self.bundle)])
        with open(self.bundle / "SHA256SUMS", "wb") as out:
            names = sorted(
                str(p.relative_to(self.bundle))
                for p in self.bundle.rglob("*")
                if p.is_file() and p.name != "SHA256SUMS"
            )
            t.steps["sha256sum"], _ = _timed(
                ["sha256sum", *names], cwd=self.bundle, stdout=out.fileno()
            )
        for archiver, flag in (("gzip", "-z"), ("pigz", "--use-compress-program=pigz")):
            out_tar = self.work / f"bundle-{archiver}.tar.gz"
            t.steps[f"tar {archiver}"], _ = _timed(
                ["tar", flag, "-cf", str(out_tar), "bundle"], cwd=self.work
            )
        return t

    def rpm_count(self) -> int:
        return len(list((self.bundle / "rpms").glob("*.rpm")))
