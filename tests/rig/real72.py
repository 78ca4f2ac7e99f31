"""The real CentOS 7.2.1511 os repodata, served beside the fixture repos, and dnf asked in bulk.

``tests/data/real-el7/metadata/centos-7.2.1511-everything-iso/`` is CentOS's own repodata of
the 7.2.1511 Everything ISO (9,007 packages; PROVENANCE.md there). Its filelists are not in
the copy (6.4 MB), so the tree serves it twice:

* ``centos-vault/7.9.2009/os/x86_64/`` with the **original** repomd.xml, which names the
  filelists: airdock reads it, and a filelists request would show in the server's log (and
  fail with 404);
* ``dnf-os/`` with ``repomd.no-filelists.xml`` as its repomd.xml: dnf always downloads
  filelists, so it gets a repository that states none.

``updates`` is ``docker-ce-20.10.16-el7-yumdownloader`` (a real ``createrepo`` of a
``yumdownloader --resolve`` folder: docker-ce 20.10.16 and the CentOS 7.9 packages it pulls
in, container-selinux, libseccomp 2.3, fuse-overlayfs, slirp4netns...: without them no
docker-ce installs on 7.2), ``extras`` holds CentOS's real container-selinux-2.95-2.el7_6
RPM, and with ``docker="fixture"`` the docker repo is the fixture's (tests/rig/mirror.py) plus
Docker's real docker-ce-selinux-17.03.3.ce-1.el7 RPM, which docker-ce obsoletes (the case of
yum's "Package docker-ce-selinux is obsoleted by docker-ce" in yum-transcripts.md T4); both
are indexed again with createrepo_c. With ``docker="yumdownloader"`` the docker
repo is the yumdownloader set itself and ``updates`` is empty: a third-party repository
that carries copies of CentOS packages (basesystem, python-IPy... have the same NEVRA in
7.2's os), the case of the repository cost rule.

``dnf_answers(tree, server_url, specs, workdir)`` asks dnf 4 (the host's, through its
Python API, one sack for all) what ``dnf --installroot <empty> --releasever=7 install
--assumeno SPEC`` would install for each spec, with ``obsoletes=True``,
``install_weak_deps=False``, ``best=False`` and the docker repo's cost as airdock gives it;
the spec ``@core`` asks for ``dnf group install core`` with the os repo alone. Answers are
sorted NEVRA lists (``name-epoch:version-release.arch``) or ``{"error": ...}``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.rig.dnfroot import HOST_PYTHON
from tests.rig.mirror import FixtureMirror, createrepo, repo_relpath
from tests.rig.tools import need, run

DATA = Path(__file__).resolve().parents[1] / "data" / "real-el7"
REAL72 = DATA / "metadata" / "centos-7.2.1511-everything-iso"
YUMDOWNLOADER = DATA / "metadata" / "docker-ce-20.10.16-el7-yumdownloader"
EXTRAS_RPM = "container-selinux-2.95-2.el7_6.noarch.rpm"
OBSOLETED_RPM = "docker-ce-selinux-17.03.3.ce-1.el7.noarch.rpm"
PRIMARY = "0e54cd65abd3621a0baf9a963eafb1a0ffd53603226f02aadce59635329bc937-primary.xml.gz"
COMPS = "436345f4b666f0a461d479ccfabc2c22823d4f2173c2653e5250fea62f0afe98-c7-x86_64-comps.xml.gz"
FILELISTS = "cb645bc4"  # prefix of the filelists file the original repomd.xml names
OS_PATH = "centos-vault/7.9.2009/os/x86_64"
DNF_OS_PATH = "dnf-os"
DOCKER_COST = 1100  # builder.plan.THIRD_PARTY_COST: the oracle gets the same repo costs


@dataclass(frozen=True)
class Real72Tree:
    root: Path

    def dnf_repos(self, base_url: str) -> dict[str, str]:
        base = base_url.rstrip("/")
        return {
            "os": f"{base}/{DNF_OS_PATH}/",
            "updates": f"{base}/{repo_relpath('updates', 'x86_64')}/",
            "extras": f"{base}/{repo_relpath('extras', 'x86_64')}/",
            "docker-ce-stable": f"{base}/{repo_relpath('docker-ce-stable', 'x86_64')}/",
        }

    def airdock_args(self, base_url: str) -> list[str]:
        base = base_url.rstrip("/")
        return ["--mirror", f"{base}/docker-ce", "--os-mirror", f"{base}/centos-vault"]


def build_real72_tree(
    dest: Path, mirror: FixtureMirror, docker: str = "fixture", os_filelists: bool = True
) -> Real72Tree:
    """Lay the served tree out under ``dest`` (copies: the server refuses symlinks out).
    ``os_filelists=False`` gives airdock the repomd that names no filelists, as dnf's."""
    os_dir = dest / OS_PATH / "repodata"
    dnf_dir = dest / DNF_OS_PATH / "repodata"
    for folder in (os_dir, dnf_dir):
        folder.mkdir(parents=True)
        for name in (PRIMARY, COMPS):
            shutil.copyfile(REAL72 / "repodata" / name, folder / name)
    original = REAL72 / "repodata" / "repomd.xml"
    shutil.copyfile(
        original if os_filelists else REAL72 / "repomd.no-filelists.xml", os_dir / "repomd.xml"
    )
    shutil.copyfile(REAL72 / "repomd.no-filelists.xml", dnf_dir / "repomd.xml")
    updates = dest / repo_relpath("updates", "x86_64")
    extras = dest / repo_relpath("extras", "x86_64")
    docker_repo = dest / repo_relpath("docker-ce-stable", "x86_64")
    if docker == "fixture":
        shutil.copytree(YUMDOWNLOADER, updates)
        _real_rpm_repo(extras, [EXTRAS_RPM])
        shutil.copytree(mirror.repo_dir("docker-ce-stable") / "Packages", docker_repo / "Packages")
        _real_rpm_repo(docker_repo, [OBSOLETED_RPM])
    elif docker == "yumdownloader":
        shutil.copytree(YUMDOWNLOADER, docker_repo)
        _real_rpm_repo(updates, [])
        _real_rpm_repo(extras, [])
    else:
        raise ValueError(docker)
    return Real72Tree(dest)


def _real_rpm_repo(repo_dir: Path, rpms: Sequence[str]) -> None:
    (repo_dir / "Packages").mkdir(parents=True, exist_ok=True)
    for name in rpms:
        shutil.copyfile(DATA / name, repo_dir / "Packages" / name)
    createrepo(repo_dir)


_BATCH_SCRIPT = r"""
import json, sys
import dnf, dnf.exceptions

args = json.loads(open(sys.argv[1]).read())

def make_base(repos):
    base = dnf.Base()
    conf = base.conf
    conf.installroot = args["root"]
    conf.cachedir = args["cachedir"]
    conf.reposdir = []
    conf.releasever = "7"
    conf.install_weak_deps = False
    conf.obsoletes = True
    conf.best = False
    conf.gpgcheck = False
    conf.substitutions["arch"] = "x86_64"
    conf.substitutions["basearch"] = "x86_64"
    for opt in ("persistdir", "logdir"):
        conf.prepend_installroot(opt)
    for repo_id, url in repos.items():
        repo = base.repos.add_new_repo(repo_id, conf, baseurl=[url])
        repo.cost = args["costs"].get(repo_id, 1000)
        repo.metadata_expire = 0
    base.fill_sack(load_system_repo=True)
    return base

def nevra(p):
    return "%s-%s:%s-%s.%s" % (p.name, p.epoch or 0, p.version, p.release, p.arch)

def answer(base, spec):
    base.reset(goal=True)
    try:
        if spec == "@core":
            base.read_comps()
            base.group_install("core", ("mandatory", "default"))
        else:
            for name in spec.split():
                base.install(name)
        base.resolve()
    except dnf.exceptions.Error as exc:
        text = str(exc) or "; ".join(base._goal.problem_rules()) or type(exc).__name__
        return {"error": " ".join(text.split())}
    out = []
    for tsi in base.transaction:
        if tsi.action_name in ("Install", "Upgrade", "Downgrade", "Obsoleting", "Reinstall"):
            out.append(nevra(tsi.pkg) + " " + tsi.pkg.reponame)
    return sorted(out)

results = {}
core = [s for s in args["specs"] if s == "@core"]
rest = [s for s in args["specs"] if s != "@core"]
if core:
    base = make_base({"os": args["repos"]["os"]})
    results["@core"] = answer(base, "@core")
    base.close()
if rest:
    base = make_base(args["repos"])
    for spec in rest:
        results[spec] = answer(base, spec)
    base.close()
print(json.dumps(results))
"""


def dnf_answers(
    tree: Real72Tree, server_url: str, specs: Sequence[str], workdir: Path
) -> dict[str, list[str] | dict[str, str]]:
    """What dnf installs for each spec on an empty root (see the module docstring).

    A spec with spaces asks for its names in one transaction. Each NEVRA is followed by
    the repository it comes from (``"name-0:1-2.x86_64 os"``)."""
    need("dnf")
    root = workdir / "root"
    (root / "var" / "log").mkdir(parents=True, exist_ok=True)
    args = {
        "root": str(root),
        "cachedir": str(workdir / "cache"),
        "repos": tree.dnf_repos(server_url),
        "costs": {"docker-ce-stable": DOCKER_COST},
        "specs": list(specs),
    }
    args_file = workdir / "args.json"
    args_file.write_text(json.dumps(args))
    proc = run(
        [HOST_PYTHON, "-c", _BATCH_SCRIPT, str(args_file)],
        check=False,
        stdin=subprocess.DEVNULL,
        env={"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "PATH": "/usr/bin:/bin", "HOME": str(root)},
    )
    if proc.returncode != 0:
        raise AssertionError(f"dnf batch failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
