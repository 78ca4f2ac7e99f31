"""`make demo`: the whole airdock story, offline, on this machine.

1. a signed fixture mirror (Docker CE + CentOS 7 trees) served on 127.0.0.1, and a registry
   holding a hello-world test image;
2. `airdock build --sign-key` makes a signed bundle from them (the builder's real CLI), and
   `airdock verify` checks it as the target will;
3. a CentOS-7-shaped sandbox host (tests/rig/sandbox.py) with @core and CentOS's old docker
   1.13; the bundle's own installer runs there: check, install, status;
4. hello-world runs on the installed engine;
5. uninstall, then uninstall --purge.

Everything started here is stopped by PID at the end; the work folder is removed unless
AIRDOCK_DEMO_KEEP=1.  Run as root (the sandbox needs `unshare --mount`).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.rig.fixtures_mirror import builder_mirror_args, fixture_dnfroot
from tests.rig.fixtures_sandbox import airdock_cli, forget_docker_key
from tests.rig.httpserver import MirrorServer
from tests.rig.mirror import cached_fixture_mirror
from tests.rig.publisher import make_publisher
from tests.rig.registry import start_registry
from tests.rig.sandbox import Sandbox
from tests.rig.testimage import build_test_image, skopeo_push

BOLD = "\033[1m" if sys.stdout.isatty() else ""
RESET = "\033[0m" if sys.stdout.isatty() else ""
STEP = [0]


def step(title: str) -> None:
    STEP[0] += 1
    print(f"\n{BOLD}=== {STEP[0]}. {title}{RESET}", flush=True)


def show(cmd: list[str], proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    print("$ " + " ".join(shlex.quote(str(c)) for c in cmd), flush=True)
    for stream in (proc.stdout, proc.stderr):
        if stream.strip():
            print(stream.rstrip(), flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"demo: the step above failed (exit {proc.returncode})")
    return proc


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return show(cmd, subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                                    **kwargs))  # fmt: skip


def in_sandbox(sb: Sandbox, argv: list[str]) -> subprocess.CompletedProcess:
    print(f"(inside the sandbox host: {sb.enter.parent})", flush=True)
    return show(argv, sb.run(argv))


def drop_work(work: Path) -> None:
    """Remove the demo's folder, or keep it (and say where) with AIRDOCK_DEMO_KEEP=1."""
    if os.environ.get("AIRDOCK_DEMO_KEEP") == "1":
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    if os.geteuid() != 0:
        print("make demo needs root (the sandbox host uses unshare --mount)", file=sys.stderr)
        return 1
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="airdock-demo-"))
    server = registry = sb = None
    try:
        step("fixture mirror and registry (offline, on 127.0.0.1)")
        mirror = cached_fixture_mirror(("x86_64",))
        server = MirrorServer(mirror.root).start()
        print(f"mirror:   {server.url}  (docker-ce/ and centos-vault/ trees, signed RPMs)")
        image = build_test_image(work / "image")
        registry = start_registry(work / "registry")
        skopeo_push(image, "latest", f"{registry.host}/library/hello-world:latest",
                    auth_file=work / "skopeo-auth.json")  # fmt: skip
        print(f"registry: {registry.url}  (library/hello-world:latest, multi-arch)")

        step("the publisher's signing key (an RSA key made by gpg)")
        publisher = make_publisher(work / "publisher")
        print(f"publisher: {publisher.fingerprint}")

        step("airdock build --sign-key: resolve, download, verify, write and sign the bundle")
        build = run([*airdock_cli(), "build", *builder_mirror_args(mirror, server.url),
                     "--docker-version", "26.1.4", "--image", "hello-world:latest",
                     "--registry-mirror", registry.url, "--output", work / "bundles",
                     "--cache-dir", work / "cache", "--sign-key", publisher.secret,
                     "--json"])  # fmt: skip
        bundle = Path(json.loads(build.stdout)["bundle"])

        step("airdock verify: what the target will check, offline, before anything runs")
        run([*airdock_cli(), "verify", json.loads(build.stdout)["tarball"], "--key",
             publisher.public])  # fmt: skip
        print("\nbundle contents:")
        for path in sorted(bundle.rglob("*")):
            if path.is_file() and "repodata" not in path.parts:
                print(f"  {path.relative_to(bundle)}")

        step("a CentOS 7 sandbox host: @core plus CentOS's old docker 1.13, air-gapped")
        root = fixture_dnfroot(work / "host-root", mirror, server.url)
        root.import_keys()
        root.install_group_core()
        root.install_names(["docker"])
        forget_docker_key(root)
        server.stop()  # from here on the host reaches nothing: the installer needs no mirror
        server = None
        sb = Sandbox(work / "host", root, trusted=[publisher.public])  # kickstart's job
        print(
            f"installroot {root.root}: {len(root.rpm_qa())} packages, "
            f"including {sorted(n for n in root.rpm_qa() if n.startswith('docker'))}"
        )
        in_sandbox(sb, ["cat", "/etc/os-release"])

        # The operator's command: install.sh picks the interpreter; here CentOS 7's Python
        # 2.7 (pyenv's 2.7.18) when this machine has it.
        python = Path(os.path.expanduser("~/.pyenv/versions/2.7.18/bin/python2.7"))
        os.environ["AIRDOCK_PYTHON"] = str(python if python.exists() else sys.executable)
        print(f"installer interpreter: {os.environ['AIRDOCK_PYTHON']}")
        installer = ["/bin/sh", bundle / "install.sh"]
        step("sudo ./install.sh check   (changes nothing)")
        in_sandbox(sb, [*installer, "check"])

        step("sudo ./install.sh --yes   (one yum transaction, every repo disabled)")
        in_sandbox(sb, [*installer, "install", "--yes"])

        step("sudo ./install.sh status")
        in_sandbox(sb, [*installer, "status"])

        step("hello-world on the installed engine")
        in_sandbox(sb, ["docker", "run", "--rm", "hello-world"])

        step("sudo ./install.sh uninstall --yes   (keeps /var/lib/docker)")
        in_sandbox(sb, [*installer, "uninstall", "--yes"])
        kept = sorted(p.name for p in (sb.var_lib / "docker").iterdir())
        print(f"/var/lib/docker still holds: {kept}")

        step("sudo ./install.sh uninstall --purge --yes")
        in_sandbox(sb, [*installer, "uninstall", "--purge", "--yes"])
        print(
            f"dnf history in the sandbox host: {root.history_count()} transactions "
            "(@core, docker 1.13, airdock install, airdock uninstall)"
        )
        print(f"\n{BOLD}demo finished in {time.time() - started:.0f}s{RESET}")
        return 0
    finally:
        if sb is not None:
            sb.close()
        if registry is not None:
            registry.stop()
        if server is not None:
            server.stop()
        drop_work(work)


if __name__ == "__main__":
    sys.exit(main())
