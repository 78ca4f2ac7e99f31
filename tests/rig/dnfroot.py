"""dnf/rpm in a sandbox installroot: the rig's oracle for "what would yum do".

``DnfRoot(root, repos, keys, arch="x86_64")`` drives the host's dnf 4 against an
installroot with a private configuration kept BESIDE the root
(``<root>.dnf/``: dnf.conf, repos.d, an rpm HOME whose .rpmmacros sets
``%_dbpath /var/lib/rpm``), so the host's /etc/yum.repos.d, /etc/dnf/vars,
/var/lib/dnf and ~/.rpmdb are never touched.  Every call runs
``dnf -y --installroot=R --releasever=7 --config=CONF --setopt=reposdir=DIR
--noplugins`` with ``gpgcheck=1 localpkg_gpgcheck=1 install_weak_deps=False``;
a non-host arch adds ``--forcearch``.  dnf keeps its cache, logs and history
inside the root (/var/cache/dnf, /var/log, /var/lib/dnf), like on a real host.

Methods
-------
``import_keys()``                         ``rpm --root R --import`` each key
``install_group_core()``                  ``dnf groupinstall core`` from the os repo only
``install_names(names, repos=None, allow_erasing=False)``   from ``repos`` (ids; None = all)
``install_files(rpm_paths, allow_erasing=False)``           ``--disablerepo='*' install ./x.rpm``
``remove(names)``                         ``dnf remove``
``shell(commands)``                       ``dnf shell`` script (one transaction; end with "run")
``resolve(names, repos=None, allow_erasing=False) -> Resolution``  dry run via the dnf API
``would_install(names, repos=None) -> set[str]``  NEVRAs added or upgraded to (the oracle)
``rpm_qa(include_keys=False) -> set[str]``  ``name-epoch:version-release.arch``
``installed_names() -> set[str]``
``history_count() -> int``                number of dnf transactions in the root
``dnf(*args, repos=None, check=True)`` / ``rpm(*args, check=True)``  raw runners
``copy(dest) -> DnfRoot``                 cheap copy of root + config (same repos/keys)

All NEVRA strings use the oracle format ``name-epoch:version-release.arch`` with
the epoch always written (0 when absent), the same as ``mirror.Pkg.nevra``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sqlite3
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.rig.tools import need, run

HOST_PYTHON = "/usr/bin/python3"  # has python3-dnf; the venv does not
QF = "%{NAME}-%{EPOCHNUM}:%{VERSION}-%{RELEASE}.%{ARCH}\\n"

RPMMACROS = "%_dbpath /var/lib/rpm\n"

_RESOLVE_SCRIPT = r"""
import json, sys
import dnf, dnf.exceptions

args = json.loads(sys.argv[1])
base = dnf.Base()
conf = base.conf
conf.read(args["config"])
conf.installroot = args["root"]
conf.reposdir = [args["reposdir"]]
conf.varsdir = [args["varsdir"]]
conf.cachedir = args["cachedir"]
conf.releasever = "7"
conf.install_weak_deps = False
conf.assumeyes = True
for opt in ("persistdir", "logdir"):
    conf.prepend_installroot(opt)
conf.substitutions["arch"] = args["arch"]
conf.substitutions["basearch"] = args["arch"]
if args["forcearch"]:
    conf.ignorearch = True
base.read_all_repos()
if args["repos"] is not None:
    for repo in base.repos.all():
        if repo.id not in args["repos"]:
            repo.disable()
base.fill_sack(load_system_repo=True)
try:
    for name in args["names"]:
        base.install(name)
    base.resolve(allow_erasing=args["allow_erasing"])
except dnf.exceptions.Error as exc:
    print(json.dumps({"error": str(exc)}))
    sys.exit(0)

def nevra(p):
    return "%s-%s:%s-%s.%s" % (p.name, p.epoch or 0, p.version, p.release, p.arch)

items = []
for tsi in base.transaction:
    items.append({"action": tsi.action_name, "nevra": nevra(tsi.pkg), "repo": tsi.pkg.reponame})
print(json.dumps({"items": items}))
base.close()
"""


class DnfError(AssertionError):
    """dnf (or the API dry run) refused; ``.output`` holds what it said."""

    def __init__(self, message: str, output: str = ""):
        super().__init__(f"{message}\n{output}")
        self.output = output


@dataclass
class Resolution:
    """A dry-run transaction: NEVRA sets by role."""

    install: set[str] = field(default_factory=set)  # new names
    upgrade: set[str] = field(default_factory=set)  # new versions of installed names
    downgrade: set[str] = field(default_factory=set)
    remove: set[str] = field(default_factory=set)  # erased (not counting upgraded-away)
    replaced: set[str] = field(default_factory=set)  # old versions going away (upgraded/obsoleted)
    items: list[dict] = field(default_factory=list)

    @property
    def inbound(self) -> set[str]:
        return self.install | self.upgrade | self.downgrade


def _basearch(arch: str) -> str:
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)


class DnfRoot:
    def __init__(
        self,
        root: Path,
        repos: dict[str, str],
        keys: Sequence[Path],
        arch: str = "x86_64",
        workdir: Path | None = None,
    ):
        self.root = Path(root).resolve()
        self.repos = dict(repos)
        self.keys = [Path(k).resolve() for k in keys]
        self.arch = arch
        self.workdir = Path(workdir) if workdir else self.root.with_name(self.root.name + ".dnf")
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_config()

    # ------------------------------------------------------------------ config

    @property
    def conf_file(self) -> Path:
        return self.workdir / "dnf.conf"

    @property
    def reposdir(self) -> Path:
        return self.workdir / "repos.d"

    @property
    def varsdir(self) -> Path:
        return self.workdir / "vars"

    @property
    def home(self) -> Path:
        return self.workdir / "home"

    @property
    def forcearch(self) -> bool:
        return _basearch(platform.machine()) != self.arch

    def _write_config(self) -> None:
        for d in (self.workdir, self.reposdir, self.varsdir, self.home):
            d.mkdir(parents=True, exist_ok=True)
        (self.home / ".rpmmacros").write_text(RPMMACROS)
        self.conf_file.write_text(
            "[main]\n"
            "gpgcheck=1\n"
            "localpkg_gpgcheck=1\n"
            "repo_gpgcheck=0\n"
            "install_weak_deps=False\n"
            "best=False\n"
            "skip_if_unavailable=False\n"
            "keepcache=0\n"
            "metadata_expire=0\n"
            "installonly_limit=3\n"
            "clean_requirements_on_remove=True\n"
            "protected_packages=\n"
            "plugins=0\n"
        )
        gpgkeys = " ".join(k.as_uri() for k in self.keys)
        sections = []
        for repo_id, url in self.repos.items():
            sections.append(
                f"[{repo_id}]\n"
                f"name=fixture {repo_id}\n"
                f"baseurl={url}\n"
                "enabled=1\n"
                "gpgcheck=1\n"
                f"gpgkey={gpgkeys}\n"
                "metadata_expire=0\n"
            )
        (self.reposdir / "fixture.repo").write_text("\n".join(sections))

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(HOME=str(self.home), LC_ALL="C.UTF-8", LANG="C.UTF-8")
        return env

    # ------------------------------------------------------------------ runners

    def dnf(
        self, *args: str, repos: Iterable[str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess:
        """Run ``dnf -y <args>`` against the root; ``repos`` restricts enabled repo ids."""
        need("dnf")
        cmd = [
            "dnf", "-y",
            f"--installroot={self.root}",
            "--releasever=7",
            f"--config={self.conf_file}",
            f"--setopt=reposdir={self.reposdir}",
            f"--setopt=varsdir={self.varsdir}",
            "--noplugins",
        ]  # fmt: skip
        if self.forcearch:
            cmd.append(f"--forcearch={self.arch}")
        if repos is not None:
            repos = list(repos)
            cmd.append("--disablerepo=*")
            cmd += [f"--enablerepo={r}" for r in repos]
        proc = run([*cmd, *args], env=self.env, check=False, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise DnfError(
                f"dnf {' '.join(args)} failed ({proc.returncode})",
                proc.stdout + proc.stderr,
            )
        return proc

    def rpm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        need("rpm")
        cmd = ["rpm", "--root", str(self.root), "--define", "_dbpath /var/lib/rpm", *args]
        return run(cmd, env=self.env, check=check)

    # ------------------------------------------------------------------ actions

    def import_keys(self) -> None:
        for key in self.keys:
            self.rpm("--import", str(key))

    def install_group_core(self) -> None:
        """The baseline: ``dnf groupinstall core`` with only the os repo enabled."""
        self.dnf("groupinstall", "core", repos=["os"])

    def install_names(
        self, names: Iterable[str], repos: Iterable[str] | None = None, allow_erasing=False
    ) -> subprocess.CompletedProcess:
        extra = ["--allowerasing"] if allow_erasing else []
        return self.dnf("install", *extra, *names, repos=repos)

    def install_files(
        self, rpm_paths: Iterable[Path], allow_erasing=False
    ) -> subprocess.CompletedProcess:
        """Install local files with every repo disabled (gpgcheck on, like the real installer)."""
        extra = ["--allowerasing"] if allow_erasing else []
        paths = [str(Path(p).resolve()) for p in rpm_paths]
        return self.dnf("install", *extra, *paths, repos=[])

    def remove(self, names: Iterable[str]) -> subprocess.CompletedProcess:
        return self.dnf("remove", *names, repos=[])

    def shell(
        self, commands: Iterable[str], repos: Iterable[str] | None = ()
    ) -> subprocess.CompletedProcess:
        """``dnf shell SCRIPT``: e.g. ["install /b/x.rpm ...", "remove docker", "run"]."""
        commands = list(commands)
        if not commands or commands[-1].strip() != "run":
            commands.append("run")
        script = self.workdir / "shell.txt"
        script.write_text("\n".join(commands) + "\n")
        return self.dnf("shell", str(script), repos=repos)

    # ------------------------------------------------------------------ oracle

    def resolve(
        self,
        names: Iterable[str],
        repos: Iterable[str] | None = None,
        allow_erasing: bool = False,
    ) -> Resolution:
        """What ``dnf install names`` would do (dnf API dry run; the root is not changed)."""
        need("dnf")
        args = {
            "config": str(self.conf_file),
            "root": str(self.root),
            "reposdir": str(self.reposdir),
            "varsdir": str(self.varsdir),
            "cachedir": str(self.workdir / "api-cache"),
            "arch": self.arch,
            "forcearch": self.forcearch,
            "repos": None if repos is None else list(repos),
            "names": list(names),
            "allow_erasing": allow_erasing,
        }
        proc = run(
            [HOST_PYTHON, "-c", _RESOLVE_SCRIPT, json.dumps(args)],
            env=self.env,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise DnfError("dnf API dry run crashed", proc.stdout + proc.stderr)
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        if "error" in data:
            raise DnfError(f"dnf would refuse: {data['error']}", proc.stdout + proc.stderr)
        res = Resolution(items=data["items"])
        buckets = {
            "Install": res.install,
            "Upgrade": res.upgrade,
            "Downgrade": res.downgrade,
            "Removed": res.remove,
            "Upgraded": res.replaced,
            "Downgraded": res.replaced,
            "Obsoleted": res.replaced,
            "Obsoleting": res.install,
            "Reinstall": res.install,
            "Reinstalled": res.replaced,
        }
        for item in data["items"]:
            bucket = buckets.get(item["action"])
            if bucket is not None:  # e.g. "Reason Change": only in .items
                bucket.add(item["nevra"])
        return res

    def would_install(self, names: Iterable[str], repos: Iterable[str] | None = None) -> set[str]:
        """NEVRAs dnf would add or upgrade to for ``install names`` (all repos by default)."""
        return self.resolve(names, repos=repos).inbound

    # ------------------------------------------------------------------ queries

    def rpm_qa(self, include_keys: bool = False) -> set[str]:
        out = self.rpm("-qa", "--qf", QF).stdout.split()
        return {line for line in out if include_keys or not line.startswith("gpg-pubkey-")}

    def installed_names(self) -> set[str]:
        return {nevra.rsplit("-", 2)[0] for nevra in self.rpm_qa()}

    def history_count(self) -> int:
        db = self.root / "var" / "lib" / "dnf" / "history.sqlite"
        if not db.exists():
            return 0
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT COUNT(*) FROM trans").fetchone()[0]

    def copy(self, dest: Path) -> DnfRoot:
        """A copy of the root (and a fresh config beside it) at ``dest``."""
        dest = Path(dest)
        need("cp")
        run(["cp", "-a", "--reflink=auto", str(self.root), str(dest)])
        shutil.rmtree(dest / "var" / "cache" / "dnf", ignore_errors=True)
        return DnfRoot(dest, self.repos, self.keys, arch=self.arch)
