"""airdock answers as yum/dnf answers, on real CentOS 7.2 metadata (issue 14).

The tree (tests/rig/real72.py): CentOS's own 7.2.1511 os repodata (9,007 packages), the real
docker-ce 20.10.16 ``yumdownloader --resolve`` set (CentOS 7.9 packages) as updates, CentOS's
real container-selinux in extras, the fixture docker repo plus Docker's real
docker-ce-selinux. dnf 4 (empty installroot, ``--releasever=7``, ``obsoletes=True``,
``install_weak_deps=False``) is the oracle.

* the sweep: every request of ``tests/data/real-el7/parity-names.txt`` (obsoletes, multilib,
  provide-only names, file dependencies, the docker closure, a seeded sample) answered by
  airdock's ``--closure full`` solver and by dnf: the same NEVRAs from the same repositories,
  or both refuse. It prints its numbers (``parity sweep: ...``).
* ``airdock build --closure full --dry-run --json`` (the CLI) on a few of those requests
  agrees with dnf too, and the os filelists (named in repomd.xml, absent from the server)
  are never requested when no file dependency of the answer needs them.
* the ``@core`` baseline equals ``dnf group install core``'s.
* a docker repo that carries copies of CentOS packages: the copies come from CentOS.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builder.cli import app
from builder.download import Cache, Downloader
from builder.errors import NotFoundError, ResolveError
from builder.plan import need_filelists, repo_cost
from builder.repodata import core_group, fetch_records, fetch_repo, group_record
from builder.resolve import Solver
from tests.rig.httpserver import MirrorServer
from tests.rig.real72 import DATA, FILELISTS, Real72Tree, build_real72_tree, dnf_answers

pytestmark = pytest.mark.slow

NAMES_FILE = DATA / "parity-names.txt"
DOCKER_REPO = "docker-ce-stable"
NOTES = {  # what yum prints about these requests (yum-transcripts.md T4 for the first)
    "docker-ce-selinux": [
        "Package docker-ce-selinux is obsoleted by docker-ce, trying to install "
        "docker-ce-3:26.1.4-1.el7.x86_64 instead"
    ],
    "java": [
        "java is not a package name; installing java-1.8.0-openjdk-1:1.8.0.65-3.b17.el7.x86_64, "
        "which provides it"
    ],
    "docker-selinux": [
        "docker-selinux is not a package name; installing "
        "container-selinux-2:2.119.2-1.911c772.el7_8.noarch, which provides it"
    ],
}
CLI_SAMPLE = (
    "docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin",
    "docker-ce-selinux",
    "glibc.i686",
    "java",
    "docker-selinux",
)


def parity_requests() -> list[str]:
    lines = NAMES_FILE.read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


@pytest.fixture(scope="module")
def real72(tmp_path_factory, fixture_mirror):
    tree = build_real72_tree(tmp_path_factory.mktemp("real72") / "tree", fixture_mirror)
    with MirrorServer(tree.root) as server:
        yield tree, server


def _oracle_repo(repo_id: str) -> str:
    return repo_id.removeprefix("centos-")


class AirdockSweep:
    """airdock's --closure full answer for many requests over one pool: the same Solver,
    repository costs and filelists decision as ``make_plan`` (builder/plan.py)."""

    def __init__(self, tree: Real72Tree, url: str, workdir: Path) -> None:
        downloader = Downloader(Cache(workdir / "cache"))
        base = url.rstrip("/")
        urls = {
            DOCKER_REPO: f"{base}/docker-ce/linux/centos/7/x86_64/stable/",
            "centos-os": f"{base}/centos-vault/7.9.2009/os/x86_64/",
            "centos-updates": f"{base}/centos-vault/7.9.2009/updates/x86_64/",
            "centos-extras": f"{base}/centos-vault/7.9.2009/extras/x86_64/",
        }
        self.repos = [fetch_repo(downloader, rid, [u], workdir) for rid, u in urls.items()]
        self.downloader, self.workdir = downloader, workdir
        self.solver = Solver("x86_64")
        for repo in self.repos:
            self.solver.add_repo(repo, cost=repo_cost(repo.id))
        self.version = self.solver.versions("docker-ce", DOCKER_REPO)[0]
        self.filelists_read: list[str] = []  # requests whose answer needed filelists
        self._with_filelists: Solver | None = None

    def answer(self, request: str) -> list[str] | dict[str, str]:
        try:
            packages = self.solver.solve(request.split(), self.version, DOCKER_REPO)
        except ResolveError as exc:
            packages, error = [], str(exc)
        else:
            error = ""
        if need_filelists(self.solver, self.repos):
            # make_plan reads filelists now and solves again. The os filelists are not
            # served (dnf's os repomd states none): use those the tree has, as dnf does.
            self.filelists_read.append(request)
            return self._answer(self._filelists_solver(), request)
        if error:
            return {"error": error}
        return _rows(packages)

    def _answer(self, solver: Solver, request: str) -> list[str] | dict[str, str]:
        try:
            return _rows(solver.solve(request.split(), self.version, DOCKER_REPO))
        except ResolveError as exc:
            return {"error": str(exc)}

    def _filelists_solver(self) -> Solver:
        if self._with_filelists is None:
            solver = Solver("x86_64")
            for repo in self.repos:
                solver.add_repo(repo, cost=repo_cost(repo.id))
                try:
                    fetch_records(self.downloader, repo, self.workdir, ("filelists",))
                except NotFoundError:
                    continue
                if "filelists" in repo.files:
                    solver.extend_filelists(repo)
            self._with_filelists = solver
        return self._with_filelists

    def core(self) -> list[str]:
        os_repo = self.repos[1]
        kind = group_record(os_repo)
        assert kind is not None
        fetch_records(self.downloader, os_repo, self.workdir, (kind,))
        solver = Solver("x86_64")
        for repo in self.repos:
            solver.add_repo(repo, cost=repo_cost(repo.id))
        solver.install_baseline(core_group(os_repo.files[kind]), os_repo.id)
        assert solver.installed is not None
        return sorted(
            f"{s.name}-{s.evr if ':' in s.evr else '0:' + s.evr}.{s.arch} os"
            for s in solver.installed.solvables_iter()
        )


def _rows(packages) -> list[str]:
    return sorted(
        f"{p.name}-{p.epoch}:{p.version}-{p.release}.{p.arch} {_oracle_repo(p.repo_id)}"
        for p in packages
    )


def _compare(ours, theirs) -> str:
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return "both fail"
    return "identical" if ours == theirs else "differ"


def test_parity_sweep_with_dnf_on_real_72(real72, tmp_path):
    tree, server = real72
    requests = parity_requests()
    assert len(requests) >= 250 and len(set(requests)) == len(requests)
    theirs = dnf_answers(tree, server.url, [*requests, "@core"], tmp_path / "dnf")
    sweep = AirdockSweep(tree, server.url, tmp_path / "airdock")
    counts = {"identical": 0, "both fail": 0, "differ": 0}
    differences = []
    for request in requests:
        ours = sweep.answer(request)
        verdict = _compare(ours, theirs[request])
        counts[verdict] += 1
        if verdict == "differ":
            differences.append(_difference(request, ours, theirs[request]))
    core = sweep.core()
    summary = (
        f"parity sweep: {len(requests)} requests tried, {counts['identical']} identical, "
        f"{counts['both fail']} both fail, {counts['differ']} differ "
        f"({len(sweep.filelists_read)} needed filelists); @core "
        f"{len(core)} packages, {'identical' if core == theirs['@core'] else 'DIFFERENT'}"
    )
    print(summary, file=sys.stderr)
    (tmp_path / "summary.txt").write_text(summary + "\n")
    assert not differences, summary + "\n" + "\n".join(differences[:10])
    assert core == theirs["@core"], summary
    # the sweep exercises what it claims: obsoleter, multilib pair and provider answers
    assert counts["identical"] >= 200, summary
    assert any(p.startswith("docker-ce-3:26.1.4") for p in theirs["docker-ce-selinux"])
    glibcs = {
        row.split(" ")[0].rsplit(".", 1)[1]
        for row in theirs["glibc.i686"]
        if row.startswith("glibc-0:")
    }
    assert glibcs == {"i686", "x86_64"}, theirs["glibc.i686"]  # side by side
    assert isinstance(theirs["krb5-server"], dict)  # /usr/share/dict/words: only in filelists


def _difference(request: str, ours, theirs) -> str:
    if isinstance(ours, dict) or isinstance(theirs, dict):
        return f"{request}: airdock {ours if isinstance(ours, dict) else len(ours)}, dnf " + (
            f"{theirs}" if isinstance(theirs, dict) else f"{len(theirs)} packages"
        )
    return (
        f"{request}: only airdock {sorted(set(ours) - set(theirs))[:5]}, "
        f"only dnf {sorted(set(theirs) - set(ours))[:5]}"
    )


def test_cli_dry_run_agrees_with_dnf_and_reads_no_filelists(real72, tmp_path):
    tree, server = real72
    theirs = dnf_answers(tree, server.url, CLI_SAMPLE, tmp_path / "dnf")
    for request in CLI_SAMPLE:
        server.reset()
        args = ["build", *tree.airdock_args(server.url), "--closure", "full", "--dry-run"]
        args += ["--json", "--no-images", "--cache-dir", str(tmp_path / "cache")]
        for name in request.split():
            args += ["--package", name]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        plan = json.loads(result.stdout)
        ours = sorted(f"{row['nevra']} {_oracle_repo(row['repo'])}" for row in plan["packages"])
        assert ours == theirs[request], request
        assert plan["filelists"] == {"read": False, "why": []}
        assert plan["notes"] == NOTES.get(request, []), request
        assert not [p for p in server.paths() if "filelists" in p or FILELISTS in p], request
        assert server.count("repodata/repomd.xml") >= 4  # every repository was read


def _dry_run(tree: Real72Tree, server: MirrorServer, tmp_path: Path, *extra: str) -> dict:
    args = ["build", *tree.airdock_args(server.url), "--closure", "full", "--dry-run", "--json"]
    args += ["--no-images", "--cache-dir", str(tmp_path / "cache"), *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "request_, why",
    [
        # libcurl-devel requires /usr/share/aclocal, a directory no primary.xml lists
        ("libcurl-devel", "libcurl-devel-7.29.0-25.el7.centos.x86_64 requires /usr/share/aclocal"),
        # a path as the name: dnf looks it up in the file lists
        ("/usr/share/aclocal", "/usr/share/aclocal is not in primary.xml's file lists"),
    ],
)
def test_filelists_are_read_when_the_answer_needs_them_and_the_plan_says_why(
    request_, why, tmp_path, fixture_mirror
):
    # the os repository here states no filelists (as dnf sees it), updates does
    tree = build_real72_tree(tmp_path / "tree", fixture_mirror, os_filelists=False)
    with MirrorServer(tree.root) as server:
        theirs = dnf_answers(tree, server.url, [request_], tmp_path / "dnf")
        server.reset()
        plan = _dry_run(tree, server, tmp_path, "--package", request_)
        read = [p for p in server.paths() if p.endswith("-filelists.xml.gz")]
    assert plan["filelists"]["read"] is True
    assert why in plan["filelists"]["why"]
    assert any("/updates/" in path for path in read) and not any("/os/" in p for p in read)
    ours = sorted(f"{row['nevra']} {_oracle_repo(row['repo'])}" for row in plan["packages"])
    assert ours == theirs[request_]


def test_a_nevra_in_a_third_party_repo_and_centos_comes_from_centos(tmp_path, fixture_mirror):
    # The docker repo is a `yumdownloader --resolve` folder: docker-ce 20.10.16 and copies of
    # CentOS packages, some of them byte for byte 7.2's (basesystem, python-IPy...).
    tree = build_real72_tree(tmp_path / "tree", fixture_mirror, docker="yumdownloader")
    request = "docker-ce docker-ce-cli containerd.io"
    with MirrorServer(tree.root) as server:
        theirs = dnf_answers(tree, server.url, [request], tmp_path / "dnf")
        plan = _dry_run(
            tree, server, tmp_path, "--docker-version", "20.10.16",
            *[arg for name in request.split() for arg in ("--package", name)],
        )  # fmt: skip
    rows = {row["nevra"]: row["repo"] for row in plan["packages"]}
    ours = sorted(f"{nevra} {_oracle_repo(repo)}" for nevra, repo in rows.items())
    assert ours == theirs[request]
    assert rows["basesystem-0:10.0-7.el7.centos.noarch"] == "centos-os"
    assert rows["docker-ce-3:20.10.16-3.el7.x86_64"] == DOCKER_REPO
    assert "centos-os" in set(rows.values()) and DOCKER_REPO in set(rows.values())


def main(argv: list[str]) -> int:
    """``python -m tests.test_yum_parity [--all]``: the sweep's numbers without pytest;
    ``--all`` asks for every package name of the tree (about 7,000; some 12 minutes)."""
    import tempfile

    from tests.rig.mirror import cached_fixture_mirror

    with tempfile.TemporaryDirectory(prefix="airdock-parity-") as tmp:
        work = Path(tmp)
        tree = build_real72_tree(work / "tree", cached_fixture_mirror(("x86_64",)))
        with MirrorServer(tree.root) as server:
            sweep = AirdockSweep(tree, server.url, work / "airdock")
            if "--all" in argv:
                requests = sorted({s.name for s in sweep.solver.pool.solvables_iter()})
            else:
                requests = parity_requests()
            theirs = dnf_answers(tree, server.url, requests, work / "dnf")
            counts = {"identical": 0, "both fail": 0, "differ": 0}
            for request in requests:
                ours = sweep.answer(request)
                verdict = _compare(ours, theirs[request])
                counts[verdict] += 1
                if verdict == "differ":
                    print(_difference(request, ours, theirs[request]))
    print(
        f"parity sweep: {len(requests)} requests tried, {counts['identical']} identical, "
        f"{counts['both fail']} both fail, {counts['differ']} differ "
        f"({len(sweep.filelists_read)} needed filelists)"
    )
    return 1 if counts["differ"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
