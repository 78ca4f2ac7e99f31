#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""airdock installer: Docker CE from this bundle onto an air-gapped CentOS 7 host.

    sudo ./install.sh check              preflight only; changes nothing
    sudo ./install.sh [install]          check, one yum transaction, start docker, load images
    sudo ./install.sh status             packages, services, images, last receipt
    sudo ./install.sh uninstall [--purge]

One file, standard library only, for CentOS 7's /usr/bin/python (2.7.5) and Python 3.6+.
Everything specific to a bundle comes from manifest.json beside this file: the builder
copies this file unchanged.

The file reads top-down: main() and the four commands (each a short list of named steps,
the operator's checklist), then the steps, then the checks, then the plumbing (host facts,
rpm/yum output parsing, OpenPGP key ids, running commands, output).  Every failure is a
Failure with one line saying what went wrong and what to do; main() prints it, the log
(--log, default /var/log/airdock-install.log) gets the details, and nothing prints a
traceback.

The bundle is untrusted input to a root process: load_bundle validates manifest.json
(validate_manifest), check compares it with the RPM headers (check_headers) and limits what
it may remove (check_remove_policy), and install and uninstall run under the installer lock
(InstallerLock, /var/lib/airdock/lock).
"""
from __future__ import print_function

import sys

if sys.version_info < (2, 7) or (3, 0) <= sys.version_info[:2] < (3, 6):
    sys.stderr.write(
        "airdock: this installer needs Python 2.7 or 3.6+ (found %s); the bundle is for "
        "CentOS 7, whose /usr/bin/python is 2.7.5\n" % sys.version.split()[0]
    )
    sys.exit(1)

import argparse  # noqa: E402
import base64  # noqa: E402
import binascii  # noqa: E402
import errno  # noqa: E402
import fcntl  # noqa: E402
import functools  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

try:
    from shlex import quote as shell_quote  # novermin (Python 2 falls back to pipes)
except ImportError:  # Python 2
    from pipes import quote as shell_quote

try:
    ask = raw_input  # noqa: F821 (Python 2)
except NameError:
    ask = input

try:  # what json.loads gives for strings and integers
    TEXT_TYPES = (str, unicode)  # noqa: F821 (Python 2)
    INT_TYPES = (int, long)  # noqa: F821 (Python 2)
except NameError:
    TEXT_TYPES = (str,)
    INT_TYPES = (int,)

VERSION = "0.1.0"  # stamped by the builder from pyproject.toml (the one version source)
BUNDLE_FORMAT = "airdock-bundle"
KNOWN_FORMAT_VERSIONS = (1,)
RECEIPT_FORMAT_VERSION = 1

DEFAULT_LOG = "/var/log/airdock-install.log"
STATE_DIR = "/var/lib/airdock"
RECEIPT = STATE_DIR + "/receipt.json"
# Publisher keys this host trusts (apt's model): provisioned by kickstart or `--trust-key`.
TRUST_DIR = "/etc/airdock/trusted-keys"
SIGNATURE_FILE = "SHA256SUMS.asc"  # the publisher's detached signature over SHA256SUMS
LOCK_FILE = STATE_DIR + "/lock"
MANIFEST_MAX_BYTES = 16 * 1024 * 1024  # a real manifest is tens of KiB
OS_RELEASE = "/etc/os-release"
OS_RELEASE_FALLBACKS = ("/etc/centos-release", "/etc/redhat-release", "/etc/system-release")
KERNEL_RELEASE = "/proc/sys/kernel/osrelease"  # what uname -r says; a file, so it can be read
DOCKER_DATA = "/var/lib/docker"
DATA_DIRS = ("/var/lib/docker", "/var/lib/containerd", "/etc/docker")
DOCKER_SOCKET = "/var/run/docker.sock"
SERVICES = ("containerd", "docker")
STOP_UNITS = ("docker.socket", "docker", "containerd")

# CentOS's own docker and friends: removed in the same transaction (Docker's install docs).
OLD_DOCKER_PACKAGES = (
    "docker", "docker-client", "docker-client-latest", "docker-common", "docker-latest",
    "docker-latest-logrotate", "docker-logrotate", "docker-engine",
)
# What docker-ce's el7 specs name in Conflicts/Obsoletes (the bundle's RPMs are asked too).
KNOWN_CONFLICTS = (
    "docker-io", "docker-engine-cs", "docker-ee", "docker-ee-cli", "docker-ce-selinux",
    "docker-engine-selinux",
)
# What "docker" means when there is no receipt (Docker's uninstall docs).
DOCKER_PACKAGES = (
    "docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin",
    "docker-compose-plugin", "docker-ce-rootless-extras",
)
# Pinned vendor signing keys (docs/el7-facts.md); any other key in keys/ needs a bundle signed by a
# publisher this host trusts (the publisher vouches for the --gpg-key it built with).
VENDOR_KEYS = {
    "060A61C51B558A7F742B77AAC52FEB6B621E9F35": "Docker's RPM signing key",
    "6341AB2753D78A78A7C27BB124C6A8A7F4A80EB5": "CentOS 7 signing key",
    "EF8F3CA66EFDF32B36CDADF76C7CB6EF305D49D6": "CentOS 7 aarch64 signing key",
}
RHEL_COMPATIBLE = ("rhel", "ol", "scientific", "redhat")
KNOWN_ARCHES = ("x86_64", "aarch64")  # a bundle's target.arch; its packages: that or noarch
HELLO_MESSAGE = "Hello from Docker!"
DOCKER_START_TIMEOUT = 90
GIB = 1024 ** 3
MIB = 1024 ** 2


# =====================================================================================
# main and the commands
# =====================================================================================


def main(argv=None):
    args = parse_args(argv)
    s = Session(args)
    try:
        s.trust = load_trust(s, args)
        code = COMMANDS[args.command](s, args)
    except Failure as exc:
        s.failed(exc)
        code = exc.code
    except KeyboardInterrupt:
        s.failed(Failure("interrupted", "run the same command again: the yum transaction "
                         "either completed or changed nothing"))
        code = 130
    except Exception as exc:  # an installer bug: one line for the operator, details in the log
        s.log("internal error:\n" + traceback.format_exc())
        s.failed(Failure("internal error (%s: %s)" % (type(exc).__name__, exc),
                         "please report it with the log"))
        code = 70
    s.finish(code)
    return code


def cmd_check(s, args):
    """Preflight only: every check, pass/warn/fail with the reason and the fix."""
    bundle = load_bundle(s, args.bundle)
    hold_lock(s, exclusive=False)
    host = Host(s)
    preflight(s, bundle, host)
    s.say("\nAll checks passed: `sudo ./install.sh` installs this bundle.")
    return 0


def cmd_install(s, args):
    """check -> keys -> one yum transaction -> services -> images -> smoke test -> receipt."""
    bundle = load_bundle(s, args.bundle)
    hold_lock(s, exclusive=not args.dry_run)
    host = Host(s)
    plan = preflight(s, bundle, host)
    if plan.nothing_to_do:
        s.say(describe_plan(plan))
    else:
        confirm(s, args, describe_plan(plan) + trust_note(s.trust))
    previous = read_receipt(s)
    history_before = yum_history_last_id(s)
    store_trusted_keys(s)
    new_keys = import_keys(s, bundle, host, plan)

    def record(transaction, images=(), complete=False):
        return write_receipt(s, bundle, host, plan, transaction, list(images), previous,
                             complete, new_keys)

    transaction = apply_transaction(s, host, plan, new_keys, history_before, record)
    if transaction:
        record(transaction)  # the packages are in: on record before a later step can fail
    images = []
    if args.no_start:
        enable_services(s)
        s.say("Services enabled but not started (--no-start): images were not loaded.")
    else:
        start_services(s)
        wait_for_docker(s)
        images = load_images(s, bundle, args.skip_images)
        smoke_test(s, bundle, args.skip_images)
    record(transaction, images, complete=True)
    summarize_install(s, bundle, plan, transaction, images)
    return 0


def cmd_status(s, args):
    """Installed docker packages vs the bundle, services, images, last receipt."""
    bundle = load_bundle(s, args.bundle, required=False)
    host = Host(s)
    receipt = read_receipt(s)
    show_packages(s, bundle, host, receipt)
    show_services(s)
    show_images(s, bundle)
    show_receipt(s, receipt)
    return 0


def cmd_uninstall(s, args):
    """Stop docker, remove what airdock installed; keep data unless --purge."""
    hold_lock(s, exclusive=not args.dry_run)
    host = Host(s)
    receipt = read_receipt(s)
    packages = removable_packages(s, host, receipt)
    purge = purge_plan(s) if args.purge else []
    if not packages and not purge:
        s.say("Nothing to uninstall: no docker packages installed%s." % (
            "" if args.purge else "; `uninstall --purge` deletes " + ", ".join(DATA_DIRS)))
        retire_receipt(s, receipt)
        return 0
    confirm(s, args, describe_uninstall(packages, purge))
    stop_services(s)
    removal = remove_packages(s, host, packages)
    remove_unused_keys(s, host, receipt)
    retire_receipt(s, receipt, removal)
    if args.purge:
        purge_data(s, purge)
    summarize_uninstall(s, packages, args.purge, removal)
    return 0


COMMANDS = {
    "check": cmd_check,
    "install": cmd_install,
    "status": cmd_status,
    "uninstall": cmd_uninstall,
}


class UsageParser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write("airdock: %s (see --help)\n" % message)
        sys.exit(2)


def parse_args(argv):
    parser = UsageParser(
        prog="install.sh",
        description="Install Docker CE from this airdock bundle on an air-gapped CentOS 7 host.",
        epilog="check and --dry-run change nothing on the host (they only write their log). "
        "Exit status: 0 ok, 1 failed, 2 bad usage.",
    )
    parser.add_argument("command", nargs="?", default="install", choices=sorted(COMMANDS),
                        help="what to do (default: install)")
    parser.add_argument("--dry-run", action="store_true",
                        help="run the checks, print every command that would change the host")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask before changing")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object with the result on stdout")
    parser.add_argument("--log", default=DEFAULT_LOG, metavar="FILE",
                        help="log file (default %s)" % DEFAULT_LOG)
    parser.add_argument("--no-start", action="store_true",
                        help="install and enable, but do not start docker (no images loaded)")
    parser.add_argument("--skip-images", action="store_true",
                        help="do not load the bundle's images")
    parser.add_argument("--purge", action="store_true",
                        help="uninstall: also delete %s" % ", ".join(DATA_DIRS))
    parser.add_argument("--trust-key", action="append", default=[], metavar="FILE",
                        help="trust this publisher key (install stores it in %s)" % TRUST_DIR)
    parser.add_argument("--trust-fingerprint", action="append", default=[], metavar="FPR",
                        help="trust the bundle's keys/publisher.asc if it has this fingerprint")
    parser.add_argument("--bundle", metavar="DIR",
                        default=os.path.dirname(os.path.abspath(__file__)),
                        help="the unpacked bundle (default: the folder of this file)")
    parser.add_argument("--version", action="version", version="airdock installer " + VERSION)
    args = parser.parse_args(argv)
    if args.purge and args.command != "uninstall":
        parser.error("--purge only goes with uninstall")
    return args


# =====================================================================================
# steps
# =====================================================================================


def hold_lock(s, exclusive):
    """Hold the installer lock for the rest of the run (see InstallerLock: who takes what)."""
    s.lock = InstallerLock(LOCK_FILE)
    s.lock.acquire(s, exclusive)


def preflight(s, bundle, host):
    """Run every check; stop before any change when one fails.  Returns the plan."""
    s.say("airdock %s: %s (docker-ce %s, %s)" % (
        s.args.command, bundle.name, bundle.docker_version, bundle.arch))
    checks, plan = run_checks(s, bundle, host)
    failed = [c for c in checks if c.status == "fail"]
    warned = [c for c in checks if c.status == "warn"]
    s.say("\n%d checks: %d failed, %d warnings" % (len(checks), len(failed), len(warned)))
    if failed:
        first = failed[0]
        more = " (+%d more, see above)" % (len(failed) - 1) if len(failed) > 1 else ""
        raise Failure("preflight failed: %s: %s%s" % (first.name, first.message, more),
                      first.fix or "fix it and run `./install.sh check` again")
    return plan


def describe_plan(plan):
    lines = []
    for pkg in plan.install:
        lines.append("  install  %s" % pkg.nevra)
    for pkg, old in plan.upgrade:
        lines.append("  upgrade  %s (from %s)" % (pkg.nevra, old))
    for nevra in plan.remove:
        lines.append("  remove   %s" % nevra)
    for nevra in plan.extra_removals:
        lines.append("  remove   %s (needs a package being removed)" % nevra)
    if not lines:
        return "Packages: nothing to change (already installed); services and images are checked."
    return "One yum transaction (every repo disabled, signatures checked):\n" + "\n".join(lines)


def confirm(s, args, text):
    s.say(text)
    if args.dry_run or args.yes:
        return
    if not sys.stdin.isatty():
        raise Failure("not confirmed: stdin is not a terminal",
                      "add --yes to proceed without a prompt")
    stream = sys.stderr if args.json else sys.stdout
    stream.write("Proceed? [y/N] ")
    stream.flush()
    try:
        answer = ask().strip().lower()
    except EOFError:
        answer = ""
    if answer not in ("y", "yes"):
        raise Failure("cancelled at the prompt; nothing was changed",
                      "run it again and answer y, or add --yes")


def store_trusted_keys(s):
    """``--trust-key FILE``: kept in TRUST_DIR so later bundles are checked against it."""
    for path, keys in s.trust.given:
        dest = os.path.join(TRUST_DIR, "%s.asc" % keys[0]["primary"])
        if os.path.isfile(dest):
            continue
        s.step("trusting publisher key %s from now on (%s)" % (keys[0]["primary"], dest))
        if s.dry_run:
            continue
        try:
            if not os.path.isdir(TRUST_DIR):
                os.makedirs(TRUST_DIR, 0o755)
            shutil.copyfile(path, dest + ".tmp")
            os.chmod(dest + ".tmp", 0o644)
            os.rename(dest + ".tmp", dest)
        except (IOError, OSError) as exc:
            raise Failure("cannot store the trusted key in %s: %s" % (TRUST_DIR, exc),
                          "check that /etc is writable, or put the key there by hand")


def import_keys(s, bundle, host, plan):
    """rpm --import the keys that signed what the transaction installs, when the host lacks
    them; returns the gpg-pubkey names added (the receipt records them for uninstall)."""
    present = host.imported_key_ids()
    needed = set((p.signing_key or "").lower()[-16:] for p in plan.install)
    needed.update((p.signing_key or "").lower()[-16:] for p, _ in plan.upgrade)
    added = []
    for key in bundle.keys:
        if not needed.intersection(key.key_ids):
            continue
        if key.short_id in present:
            s.log("key %s already imported" % key.short_id)
            continue
        s.step("importing signing key %s (%s)" % (key.fingerprint or key.short_id, key.file))
        s.run(["rpm", "--import", key.path], change=True, fail="rpm --import %s failed" % key.file,
              fix="check that the bundle is complete (sha256sum -c SHA256SUMS)")
        added.append("gpg-pubkey-" + key.short_id)
    return added


def apply_transaction(s, host, plan, new_keys, history_before, record=None):
    """The one yum transaction; verified afterwards with rpm (yum shell's exit code is not).
    Returns what the receipt says about it ({"id": its yum history ID} or {"id": None,
    "why_no_id": ...}), None when there was none (nothing to do, --dry-run).  When the rpmdb
    changed but not as planned, record(that, with "incomplete") runs before the Failure."""
    if plan.nothing_to_do:
        s.step("packages: already installed, no transaction")
        return None
    before = host.all_packages()
    script = write_shell_script(s, plan)
    s.step("yum transaction: %d to install, %d to upgrade, %d to remove" % (
        len(plan.install), len(plan.upgrade), len(plan.remove)))
    cmd = ["yum", "-y", "--disablerepo=*", "--setopt=gpgcheck=1",
           "--setopt=localpkg_gpgcheck=1", "--setopt=skip_broken=0", "shell", script]
    rc, out = s.run(cmd, change=True, check=False)
    if s.dry_run:
        return None
    host.forget()
    problems = transaction_problems(plan, host)
    if problems:
        unchanged = host.all_packages() == before
        remove_keys(s, new_keys)
        gpg = "GPG" in out or "signature" in out.lower() or "NOKEY" in out
        reason = last_error_line(out) or problems[0]
        if unchanged:
            raise Failure("the yum transaction failed and changed nothing: %s" % reason,
                          "the bundle's signatures did not verify: rebuild or re-copy the bundle"
                          if gpg else "see the log for yum's output, fix it and run install again")
        transaction = committed_transaction(s, history_before)
        transaction["incomplete"] = problems
        if record:
            record(transaction)
        raise Failure("the yum transaction did not complete: %s" % "; ".join(problems[:3]),
                      "see `yum history` and the log; run install again")
    return committed_transaction(s, history_before)


def committed_transaction(s, history_before):
    """{"id": N} for the yum history entry a transaction just made, or {"id": None,
    "why_no_id": why} when yum history does not show a new one."""
    newest, why = yum_history_newest(s)
    if newest is not None and history_before is not None and newest <= history_before:
        newest, why = None, "`yum history list` shows no new entry (the newest is still %d)" % (
            history_before)
    if newest is None:
        s.log("transaction ID unknown: %s" % why)
        return {"id": None, "why_no_id": why}
    return {"id": newest}


def enable_services(s):
    for unit in SERVICES:
        s.run(["systemctl", "enable", unit], change=True,
              fail="systemctl enable %s failed" % unit, fix="see the log")


def start_services(s):
    s.step("starting containerd and docker (systemctl enable --now)")
    rc, out = s.run(["systemctl", "enable", "--now", "containerd", "docker"], change=True,
                    check=False)
    if rc != 0:
        service_failed(s, "systemctl enable --now containerd docker failed")


def wait_for_docker(s):
    if s.dry_run:
        s.say("  (would wait for %s)" % DOCKER_SOCKET)
        return
    deadline = time.time() + DOCKER_START_TIMEOUT
    while True:
        rc, out = s.run(["docker", "version", "--format", "{{.Server.Version}}"], check=False,
                        quiet=True)
        if rc == 0 and out.strip():
            s.step("docker is up (engine %s)" % out.strip().splitlines()[-1])
            return
        state = s.run(["systemctl", "is-active", "docker"], check=False, quiet=True)[1].strip()
        if state in ("failed", "inactive") or time.time() > deadline:
            service_failed(s, "docker did not come up (%s) within %ds" % (
                state or "no answer", DOCKER_START_TIMEOUT))
        time.sleep(1)


def service_failed(s, what):
    """Print the tail of the service's journal and what to try, then fail."""
    tail = []
    for cmd in (["systemctl", "status", "docker", "--no-pager", "-l"],
                ["journalctl", "-u", "docker", "--no-pager", "-n", "30"]):
        rc, out = s.run(cmd, check=False, quiet=True)
        lines = [ln for ln in out.splitlines() if ln.strip() and "No entries" not in ln]
        tail.extend(lines[-15:])
    if tail:
        s.say("\nlast lines of the docker service log:\n" + "\n".join("  " + ln for ln in tail))
        s.result["service_log"] = tail
    raise Failure(what, "read `journalctl -u docker -n 50` (often /etc/docker/daemon.json or "
                  "the storage driver), fix it and run install again; packages stay installed")


def load_images(s, bundle, skip):
    """docker load each bundled image unless that image ID is already there."""
    loaded = []
    if skip:
        if bundle.images:
            s.step("images: skipped (--skip-images)")
        return loaded
    for image in bundle.images:
        have = docker_image_id(s, image["repo_tag"])
        want = image.get("config_digest")
        if have and have == want:
            s.step("image %s: already loaded (%s)" % (image["repo_tag"], short_digest(have)))
        else:
            s.step("loading image %s (%s)" % (image["repo_tag"], human_size(image.get("size", 0))))
            s.run(["docker", "load", "-i", bundle.path(image["file"])], change=True,
                  fail="docker load of %s failed" % image["file"],
                  fix="check the bundle (sha256sum -c SHA256SUMS) and docker's log")
            if not s.dry_run:
                have = docker_image_id(s, image["repo_tag"])
                if want and have != want:
                    raise Failure("image %s loaded as %s, the manifest says %s" % (
                        image["repo_tag"], have, want), "re-copy the bundle and run install again")
        loaded.append({"repo_tag": image["repo_tag"], "id": have or want})
    return loaded


def smoke_test(s, bundle, skipped_images):
    """docker run --rm hello-world when the bundle carries it; otherwise docker info."""
    hello = [i["repo_tag"] for i in bundle.images if image_name(i["repo_tag"]) == "hello-world"]
    if hello and skipped_images and not docker_image_id(s, hello[0]):
        hello = []
    if hello:
        tag = hello[0]
        s.step("smoke test: docker run --rm %s" % tag)
        rc, out = s.run(["docker", "run", "--rm", tag], change=True, check=False)
        if s.dry_run:
            return
        greeting = [ln.strip() for ln in out.splitlines() if ln.strip()]
        if rc != 0 or not greeting:
            raise Failure("the smoke test `docker run --rm %s` failed: %s" % (
                tag, last_error_line(out) or "it printed nothing"),
                "docker is installed and running; see the log and `journalctl -u docker`")
        s.say("  " + (HELLO_MESSAGE if HELLO_MESSAGE in out else greeting[0]))
        s.result["smoke_test"] = greeting[0] if HELLO_MESSAGE not in out else HELLO_MESSAGE
        return
    s.step("smoke test: docker info (no hello-world image loaded)")
    s.run(["docker", "info"], change=True, fail="`docker info` failed",
          fix="see `journalctl -u docker`")


def write_receipt(s, bundle, host, plan, committed, images, previous, complete=True,
                  new_keys=()):
    """/var/lib/airdock/receipt.json: what this bundle's install changed, with the yum
    transaction's ID (committed, from apply_transaction; None when there was no transaction)
    and the rpm keys airdock imported.  Written right after the transaction (complete=False)
    and again at the end."""
    imported = sorted(set(list(new_keys) + list((previous or {}).get("imported_keys", []))))
    managed = set(plan.managed_names())
    if previous:
        managed.update(previous.get("managed_packages", []))
    host.forget()
    still = host.installed(sorted(managed)) if not s.dry_run else {}
    transaction = {
        "id": None,
        "time": utc_now(),
        "bundle": bundle.name,
        "added": [p.nevra for p in plan.install],
        "upgraded": [{"name": p.name, "from": old, "to": p.evr} for p, old in plan.upgrade],
        "removed": list(plan.remove) + list(plan.extra_removals),
    }
    transaction.update(committed or {"why_no_id": "no transaction: the packages were "
                                                  "already installed"})
    history = []
    if previous:
        history = previous.get("previous", [])[:9]
        if not committed and plan.nothing_to_do and previous.get("transaction"):
            transaction = previous["transaction"]  # this run changed no package
        else:
            history = [summarize_receipt(previous)] + history
    receipt = {
        "format": "airdock-receipt",
        "format_version": RECEIPT_FORMAT_VERSION,
        "time": utc_now(),
        "installer_version": VERSION,
        "bundle": {
            "name": bundle.name,
            "docker_version": bundle.docker_version,
            "manifest_sha256": bundle.manifest_sha256,
            "path": bundle.root,
        },
        "packages_changed": not plan.nothing_to_do,
        "complete": complete,
        "transaction": transaction,
        "managed_packages": sorted(n for n in managed if s.dry_run or n in still),
        "imported_keys": imported,
        "trust": s.trust.label,
        "images": images,
        "previous": history,
    }
    if s.dry_run:
        s.say("  (would write %s)" % RECEIPT)
        return receipt
    write_json_atomic(RECEIPT, receipt)
    copy_installer(s)
    s.log("receipt written to %s (transaction %s%s)" % (
        RECEIPT, transaction.get("id"), "" if complete else "; the install goes on"))
    s.result["receipt"] = receipt
    return receipt


def copy_installer(s):
    """Keep a copy beside the receipt so uninstall needs no bundle (k3s writes an uninstaller)."""
    try:
        shutil.copyfile(os.path.abspath(__file__), os.path.join(STATE_DIR, "airdock_install.py"))
    except (IOError, OSError) as exc:
        s.log("could not copy the installer to %s: %s" % (STATE_DIR, exc))


def summarize_install(s, bundle, plan, transaction, images):
    transaction_id = (transaction or {}).get("id")
    s.result.update({"transaction_id": transaction_id, "images": images})
    if s.dry_run:
        s.say("\nDry run: nothing was changed.")
        return
    s.say("\nDone: docker-ce %s from %s." % (bundle.docker_version, bundle.name))
    if transaction_id:
        s.say("  yum transaction %s (`yum history info %s`; receipt %s)" % (
            transaction_id, transaction_id, RECEIPT))
    elif transaction:
        s.say("  one yum transaction; its ID is unknown: %s (receipt %s)" % (
            transaction.get("why_no_id"), RECEIPT))
    else:
        s.say("  packages were already installed (receipt %s)" % RECEIPT)
    s.say("  status:    sudo ./install.sh status")
    s.say("  uninstall: sudo python %s/airdock_install.py uninstall   (keeps %s)" % (
        STATE_DIR, DOCKER_DATA))


def show_packages(s, bundle, host, receipt):
    names = set(DOCKER_PACKAGES)
    if bundle:
        names.update(p.name for p in bundle.packages if p.requested)
    if receipt:
        names.update(receipt.get("managed_packages", []))
    installed = host.installed(sorted(names)) if host.has("rpm") else {}
    wanted = dict((p.name, p) for p in bundle.packages) if bundle else {}
    rows = []
    s.say("Packages:")
    for name in sorted(names):
        have = installed.get(name)
        have_evr = evr_string(max_evr(have)) if have else None
        pkg = wanted.get(name)
        note = ""
        if pkg and have:
            cmp = evr_compare(pkg.evr_tuple, max_evr(have))
            note = "= bundle" if cmp == 0 else ("bundle has %s" % pkg.evr)
        elif pkg:
            note = "bundle has %s" % pkg.evr
        if have or pkg:
            s.say("  %-28s %-28s %s" % (name, have_evr or "not installed", note))
        rows.append({"name": name, "installed": have_evr, "bundle": pkg.evr if pkg else None})
    s.result["packages"] = rows


def show_services(s):
    s.say("Services:")
    states = {}
    for unit in SERVICES:
        active = s.run(["systemctl", "is-active", unit], check=False, quiet=True,
                       stderr=False)[1].strip()
        enabled = s.run(["systemctl", "is-enabled", unit], check=False, quiet=True,
                        stderr=False)[1].strip()
        active = active.splitlines()[-1] if active else "unknown"
        enabled = enabled.splitlines()[-1] if enabled else "no unit file"
        states[unit] = {"active": active, "enabled": enabled}
        s.say("  %-12s %-10s %s" % (unit, active, enabled))
    s.result["services"] = states


def show_images(s, bundle):
    rc, out = s.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
                    check=False, quiet=True)
    present = {}
    if rc == 0:
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2:
                present[parts[0]] = parts[1]
    s.say("Images:" + ("" if rc == 0 else " (docker is not answering)"))
    for tag in sorted(present):
        s.say("  %s %s" % (tag, present[tag]))
    missing = []
    for image in (bundle.images if bundle else []):
        if image["repo_tag"] not in present:
            missing.append(image["repo_tag"])
            s.say("  %s (in the bundle, not loaded)" % image["repo_tag"])
    s.result["images"] = {"docker_answers": rc == 0, "present": present, "bundle_missing": missing}


def show_receipt(s, receipt):
    if not receipt:
        s.say("Receipt: none (%s)" % RECEIPT)
    else:
        tx = receipt.get("transaction", {})
        s.say("Receipt: %s (last run %s); packages from yum transaction %s at %s%s" % (
            receipt.get("bundle", {}).get("name"), receipt.get("time"), tx.get("id"),
            tx.get("time"), "" if receipt.get("complete", True) else
            "; that install stopped after its transaction: run install again"))
    s.result["receipt"] = receipt


def removable_packages(s, host, receipt):
    """NEVRAs to remove: what the receipt says airdock installed, minus what others need."""
    names = receipt.get("managed_packages") if receipt else None
    installed = host.installed(names or list(DOCKER_PACKAGES))
    if not names:
        names = list(DOCKER_PACKAGES)
        if installed:
            s.say("No airdock receipt: removing the docker packages Docker's docs name.")
    nevras = []
    for name in names:
        for evr in installed.get(name, []):
            nevras.append(nevra_string(name, evr))
    if not nevras:
        return []
    keep = needed_by_others(s, host, nevras)
    for nevra, why in keep:
        s.say("  keeping %s (%s)" % (nevra, why))
    kept = set(n for n, _ in keep)
    return [n for n in nevras if n not in kept]


def purge_plan(s):
    found = []
    for path in DATA_DIRS:
        if os.path.lexists(path):
            found.append((path, tree_size(path)))
    return found


def describe_uninstall(packages, purge):
    lines = []
    if packages:
        lines.append("Stop docker and containerd, then remove in one yum transaction:")
        lines.extend("  remove   %s" % n for n in packages)
    else:
        lines.append("No docker packages to remove.")
    if purge:
        lines.append("Then DELETE (--purge):")
        lines.extend("  %-22s %s" % (p, human_size(size)) for p, size in purge)
    else:
        lines.append("Kept: %s (uninstall --purge deletes them)." % ", ".join(DATA_DIRS))
    return "\n".join(lines)


def stop_services(s):
    s.step("stopping docker and containerd")
    for unit in STOP_UNITS:
        s.run(["systemctl", "disable", "--now", unit], change=True, check=False)
    if s.dry_run:
        return
    for unit in SERVICES:
        state = s.run(["systemctl", "is-active", unit], check=False, quiet=True)[1].strip()
        if state == "active":
            raise Failure("%s is still running after `systemctl stop %s`" % (unit, unit),
                          "stop it by hand (systemctl stop %s) and run uninstall again" % unit)


def remove_packages(s, host, packages):
    """One yum remove; returns {"id": its yum history ID, "time", "removed"} (or
    "why_no_id") for the retired receipt, None when nothing was removed."""
    if not packages:
        return None
    s.step("yum remove: %d packages" % len(packages))
    history_before = yum_history_last_id(s) if not s.dry_run else None
    cmd = ["yum", "-y", "--disablerepo=*", "--setopt=clean_requirements_on_remove=0",
           "remove"] + [nevra_nvra(n) for n in packages]
    rc, out = s.run(cmd, change=True, check=False)
    if s.dry_run:
        return None
    host.forget()
    installed = host.installed(sorted(set(nevra_name(n) for n in packages)))
    left = [n for n in packages if any(nevra_string(nevra_name(n), evr) == n
                                       for evr in installed.get(nevra_name(n), []))]
    if left:
        raise Failure("yum remove did not remove %s: %s" % (", ".join(left), last_error_line(out)),
                      "see the log; remove them with `yum remove` and run uninstall again")
    removal = committed_transaction(s, history_before)
    removal.update({"time": utc_now(), "removed": list(packages)})
    return removal


def remove_unused_keys(s, host, receipt):
    """The gpg-pubkey entries airdock imported that no installed package is signed by."""
    names = (receipt or {}).get("imported_keys") or []
    if not names:
        return
    used = host.signing_key_ids() if not s.dry_run else set()
    for name in names:
        short = name.rsplit("-", 1)[-1].lower()
        if any(k.endswith(short) for k in used):
            s.say("  keeping key %s (installed packages are signed by it)" % name)
            continue
        s.step("removing key %s (airdock imported it; nothing installed needs it)" % name)
        s.run(["rpm", "-e", name], change=True, check=False)


def retire_receipt(s, receipt, removal=None):
    """receipt.json -> receipt.uninstalled-STAMP.json, with the uninstall's transaction (and
    such a record alone when there was no receipt but a transaction)."""
    if s.dry_run or not (receipt or removal):
        return
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    retired = dict(receipt or {"format": "airdock-receipt",
                               "format_version": RECEIPT_FORMAT_VERSION,
                               "installer_version": VERSION})
    retired["uninstalled"] = utc_now()
    if removal:
        retired["uninstall_transaction"] = removal
    write_json_atomic(os.path.join(STATE_DIR, "receipt.uninstalled-%s.json" % stamp), retired)
    if receipt:
        os.remove(RECEIPT)


def purge_data(s, purge):
    if s.dry_run:
        for path, _ in purge:
            s.say("  (would delete %s)" % path)
        return
    for path, _ in purge:
        inside = mounts_under(path)
        if inside:
            raise Failure("%s still has a filesystem mounted inside (%s): nothing deleted" % (
                path, inside[0]), "unmount it (or reboot) and run uninstall --purge again")
    for path, size in purge:
        s.step("deleting %s (%s)" % (path, human_size(size)))
        try:
            remove_tree(path)
        except (IOError, OSError) as exc:
            raise Failure("could not delete %s: %s" % (path, exc),
                          "stop whatever still uses it (containers, mounts) and delete it by hand")


def summarize_uninstall(s, packages, purged, removal=None):
    transaction_id = (removal or {}).get("id")
    s.result.update({"removed": packages, "purged": bool(purged),
                     "transaction_id": transaction_id})
    if s.dry_run:
        s.say("\nDry run: nothing was changed.")
        return
    s.say("\nDone: %d packages removed%s%s." % (
        len(packages), " (yum transaction %s)" % transaction_id if transaction_id else "",
        ", data deleted" if purged else ""))
    if not purged:
        s.say("  kept %s; `uninstall --purge` deletes them" % ", ".join(DATA_DIRS))


# =====================================================================================
# checks
# =====================================================================================


class Check(object):
    def __init__(self, name, status, message, fix=None):
        self.name, self.status, self.message, self.fix = name, status, message, fix

    def as_dict(self):
        return {"name": self.name, "status": self.status, "message": self.message, "fix": self.fix}


def run_checks(s, bundle, host):
    """Every check in order; later ones are skipped when what they need failed."""
    checks = []

    def add(check):
        checks.append(check)
        s.show_check(check)
        return check

    root = add(check_root(host))
    add(check_os(host, bundle))
    add(check_kernel(host))
    add(check_arch(host, bundle))
    tools = add(check_tools(host))
    add(check_space(host, bundle))
    add(check_filesystem(s, host))
    add(check_selinux(host))
    sums = add(check_checksums(s, bundle))
    add(check_trust(s, bundle, s.trust))
    s.result["trust"] = s.trust.label
    plan = None
    if tools.status == "fail":
        for name in ("signatures", "headers", "remove-list", "conflicts", "docker-ce",
                     "transaction"):
            add(Check(name, "skip", "needs yum and rpm"))
        s.result["checks"] = [c.as_dict() for c in checks]
        return checks, plan
    headers = None
    if sums.status == "fail":
        for name in ("signatures", "headers", "remove-list"):
            add(Check(name, "skip", "the bundle failed its checksums"))
    else:
        add(check_signatures(s, bundle))
        headers = add(check_headers(s, bundle))
        add(check_remove_policy(s, bundle))
    plan = make_plan(s, bundle, host)
    add(check_conflicts(plan))
    add(check_existing(plan, bundle))
    if sums.status == "fail":
        add(Check("transaction", "skip", "the bundle failed its checksums"))
    elif headers.status == "fail":  # the plan goes by identities the RPMs do not have
        add(Check("transaction", "skip", "the manifest does not describe the bundle's RPMs"))
    elif root.status == "fail":
        add(Check("transaction", "skip", "the yum test transaction needs root"))
    else:
        add(check_transaction(s, bundle, plan))
    s.result["checks"] = [c.as_dict() for c in checks]
    return checks, plan


def check_root(host):
    if host.euid == 0:
        return Check("root", "pass", "running as root")
    return Check("root", "fail", "running as uid %d, not root" % host.euid,
                 "run it as root: sudo ./install.sh %s" % " ".join(sys.argv[1:]).strip())


def check_os(host, bundle):
    info = host.os_release()
    os_id, version = info.get("ID", ""), info.get("VERSION_ID", "")
    pretty = info.get("PRETTY_NAME") or ("%s %s" % (os_id, version)).strip() or "unknown OS"
    major = version.split(".")[0]
    built_for = bundle.target.get("baseline") or "CentOS 7"
    if os_id == "centos" and major == "7":
        return Check("os", "pass", pretty + minor_release_note(host))
    if os_id in RHEL_COMPATIBLE and major == "7":
        return Check("os", "warn", "%s is RHEL-compatible, not CentOS: the bundle was built for "
                     "%s" % (pretty, built_for),
                     "the test transaction below tells whether this host lacks anything")
    return Check("os", "fail", "%s is not supported: this bundle holds CentOS 7 (el7) packages"
                 % pretty, "install on a CentOS 7 host (RHEL 7 works with a warning)")


def minor_release_note(host):
    text = host.read_first(("/etc/centos-release",))
    match = re.search(r"release (7\.\d+)", text or "")
    return " (%s)" % match.group(1) if match else ""


def check_kernel(host):
    release = host.kernel_release()
    parsed = parse_kernel_release(release)
    if not parsed:
        return Check("kernel", "warn", "cannot read the kernel release from %s" % KERNEL_RELEASE,
                     "check `uname -r` is 3.10 or newer")
    major, minor, patch, build = parsed
    if (major, minor) < (3, 10):
        return Check("kernel", "fail", "kernel %s is older than 3.10, which Docker needs" % release,
                     "boot a CentOS 7 kernel (3.10.0-*.el7)")
    if (major, minor) == (3, 10) and build is not None and build < 514:
        return Check("kernel", "warn", "kernel %s predates 3.10.0-514 (CentOS 7.3): no overlay2, "
                     "docker falls back to devicemapper" % release,
                     "update the kernel to 3.10.0-514 or later and reboot")
    return Check("kernel", "pass", "kernel %s" % release)


def check_arch(host, bundle):
    machine = normalize_arch(host.machine)
    if machine == normalize_arch(bundle.arch):
        return Check("arch", "pass", "%s, as the bundle" % machine)
    return Check("arch", "fail", "this host is %s, the bundle is for %s" % (machine, bundle.arch),
                 "build a bundle with `airdock build --arch %s`" % machine)


def check_tools(host):
    missing = [t for t in ("yum", "rpm") if not host.has(t)]
    if missing:
        return Check("tools", "fail", "%s not found: this is not a yum/rpm host" % (
            " and ".join(missing)), "run it on CentOS 7")
    if not host.has("systemctl"):
        return Check("tools", "warn", "yum and rpm found, systemctl not found",
                     "the service cannot be started; use --no-start")
    return Check("tools", "pass", "yum, rpm and systemctl found")


def check_space(host, bundle):
    images = sum(int(i.get("size") or 0) for i in bundle.images)
    rpms = sum(int(p.size or 0) for p in bundle.packages)
    need_docker = 3 * images + 1 * GIB
    need_usr = 3 * rpms + 100 * MIB
    docker_free = free_bytes(DOCKER_DATA)
    usr_free = free_bytes("/usr")
    tmp_free = free_bytes(tempfile.gettempdir())
    where = "%s free for %s, %s for packages in /usr, %s in %s" % (
        human_size(docker_free), DOCKER_DATA, human_size(usr_free), human_size(tmp_free),
        tempfile.gettempdir())
    if docker_free < need_docker:
        return Check("space", "fail", "only %s free for %s, the images need about %s" % (
            human_size(docker_free), DOCKER_DATA, human_size(need_docker)),
            "free space under %s (or mount a bigger disk there)" % DOCKER_DATA)
    if usr_free < need_usr or tmp_free < 10 * MIB:
        return Check("space", "fail", "not enough space: %s" % where,
                     "free space in /usr (about %s needed) and %s" % (
                         human_size(need_usr), tempfile.gettempdir()))
    if docker_free < 10 * GIB:
        return Check("space", "warn", where + ": little room for images you add later",
                     "consider a bigger disk for %s" % DOCKER_DATA)
    return Check("space", "pass", where)


def check_filesystem(s, host):
    path = existing_parent(DOCKER_DATA)
    mount = mount_of(path)
    if not mount:
        return Check("filesystem", "warn", "cannot tell the filesystem of %s" % DOCKER_DATA)
    point, fstype = mount
    where = "%s is on %s (%s)" % (DOCKER_DATA, point, fstype)
    if fstype == "xfs":
        if not host.has("xfs_info"):
            return Check("filesystem", "warn", where + "; xfs_info not found, ftype unknown",
                         "check `xfs_info %s` shows ftype=1 (overlay2 needs it)" % point)
        rc, out = s.run(["xfs_info", point], check=False, quiet=True)
        if "ftype=1" in out:
            return Check("filesystem", "pass", where + " with ftype=1: overlay2 works")
        if "ftype=0" in out:
            return Check("filesystem", "fail", where + " with ftype=0: overlay2 cannot work "
                         "(dockerd 26 refuses it)",
                         "put %s on ext4 or on xfs made with `mkfs.xfs -n ftype=1`" % DOCKER_DATA)
        return Check("filesystem", "warn", where + "; xfs_info did not report ftype",
                     "check `xfs_info %s`" % point)
    if fstype in ("ext4", "ext3", "btrfs"):
        return Check("filesystem", "pass", where + ": overlay2 works")
    return Check("filesystem", "warn", where + ": overlay2 may not work on it",
                 "put %s on ext4 or xfs (ftype=1)" % DOCKER_DATA)


def check_selinux(host):
    mode = host.selinux_mode()
    if mode == "enforcing":
        return Check("selinux", "pass",
                     "SELinux enforcing (container-selinux comes with the bundle)")
    return Check("selinux", "pass", "SELinux %s" % mode)


def check_checksums(s, bundle):
    problems, count, extra = verify_bundle_files(bundle)
    if problems:
        more = " (+%d more)" % (len(problems) - 1) if len(problems) > 1 else ""
        s.log("checksum problems:\n  " + "\n  ".join(problems))
        return Check("checksums", "fail", problems[0] + more,
                     "the bundle is damaged or was altered: copy it again and run "
                     "`sha256sum -c SHA256SUMS` in its folder")
    if extra:
        return Check("checksums", "warn", "%d files verified; not in SHA256SUMS (ignored): %s" % (
            count, ", ".join(extra[:3])))
    return Check("checksums", "pass", "SHA256SUMS: %d files verified" % count)


def check_signatures(s, bundle):
    """Key fingerprints against the manifest and the pinned vendor keys; rpm -K with a
    throw-away rpmdb holding only the bundle's keys (the host's rpmdb is not touched)."""
    notes = []
    status = "pass"
    ids = set()
    for key in bundle.keys:
        if not key.fingerprint:
            return Check("signatures", "fail", "%s is not an OpenPGP public key" % key.file,
                         "re-copy the bundle")
        if key.manifest_fingerprint and key.manifest_fingerprint != key.fingerprint:
            return Check("signatures", "fail", "%s has fingerprint %s, the manifest says %s" % (
                key.file, key.fingerprint, key.manifest_fingerprint), "re-copy the bundle")
        ids.update(key.key_ids)
        vendor = VENDOR_KEYS.get(key.fingerprint)
        if vendor:
            notes.append(vendor)
        elif s.trust.verified:
            notes.append("%s, vouched for by publisher %s" % (key.fingerprint, s.trust.verified))
        else:
            return Check("signatures", "fail", "%s (%s) is not a vendor key, and no publisher "
                         "this host trusts signed the bundle" % (key.file, key.fingerprint),
                         "use a bundle of vendor-signed packages, or trust its publisher: "
                         "--trust-key PUBLISHER.asc (kept in %s)" % TRUST_DIR)
    unsigned = [p.file for p in bundle.packages if not p.signing_key or p.signing_key.lower()[-16:]
                not in ids]
    if unsigned:
        return Check("signatures", "fail", "%s is not signed by a key in the bundle" % unsigned[0],
                     "rebuild the bundle; the installer refuses unsigned packages")
    bad = rpm_checksig(s, bundle)
    if bad:
        return Check("signatures", "fail", "signature check failed: %s" % bad[0],
                     "the bundle was altered or is damaged: copy it again from the source")
    return Check("signatures", status, "%d packages signed by the bundle's keys: %s" % (
        len(bundle.packages), "; ".join(notes)))


def check_trust(s, bundle, trust):
    """SHA256SUMS.asc against the host's trust root (keys in TRUST_DIR, --trust-key,
    --trust-fingerprint).  With a trust root, only a bundle signed by a trusted publisher
    passes; without one, the operator is shown what to compare."""
    sums, asc = bundle.path("SHA256SUMS"), bundle.path(SIGNATURE_FILE)
    try:
        with open(sums, "rb") as handle:
            data = handle.read()
    except (IOError, OSError):
        return Check("trust", "skip", "no SHA256SUMS to check a signature over")
    trust.sums_sha256 = hashlib.sha256(data).hexdigest()
    compare = "compare the sha256 of SHA256SUMS, %s, with the one the publisher published" % (
        trust.sums_sha256)
    if not os.path.isfile(asc):
        if trust.exists:
            return Check("trust", "fail", "the bundle is not signed (no %s), and this host "
                         "installs only bundles signed by a publisher it trusts (%s)" % (
                             SIGNATURE_FILE, trust.describe()),
                         "get the signed bundle from its publisher (`airdock build --sign-key`)")
        return Check("trust", "warn", "the bundle is not signed: %s" % compare)
    try:
        with open(asc, "rb") as handle:
            signature = handle.read()
        own = publisher_keys(bundle)
        if not trust.exists:
            trust.signer = verify_signature(data, signature, own)
            return Check("trust", "warn", "signed by %s, but this host trusts no publisher "
                         "yet: compare that fingerprint with the publisher's" % trust.signer,
                         "then run with --trust-fingerprint %s (or --trust-key FILE)" % (
                             trust.signer))
        keys = trust.root + [k for k in own if k["primary"] in trust.fingerprints]
        trust.verified = trust.signer = verify_signature(data, signature, keys)
    except (ValueError, IndexError, struct.error, TypeError) as exc:
        return Check("trust", "fail", "%s does not verify: %s" % (SIGNATURE_FILE, exc),
                     "the bundle was altered or comes from another publisher: get it again "
                     "from yours and check it with `airdock verify` or `gpg --verify`")
    return Check("trust", "pass", "signed by %s (%s)" % (trust.verified,
                                                        trust.source_of(trust.verified)))


def trust_note(trust):
    if trust.verified:
        return ""
    return "\nThe bundle is %s: SHA256SUMS sha256 %s; compare it with the publisher's." % (
        "signed by an untrusted key" if trust.signer else "not signed", trust.sums_sha256)


HEADER_QUERYFORMAT = "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n"


def check_headers(s, bundle):
    """Each RPM's header (name, epoch, version, release, arch) is what the manifest says: the
    plan, the transaction's verification, the receipt and uninstall all go by the manifest's
    identities, so a manifest that lies about a (genuine, signed) RPM must stop here, before
    the transaction, not after it.  One rpm -qp over every file, in manifest order."""
    files = [p.path for p in bundle.packages]
    rc, out = s.run(["rpm", "-qp", "--nosignature", "--nodigest", "--qf", HEADER_QUERYFORMAT]
                    + files, check=False, quiet=True, stderr=False)
    lines = out.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    # Exactly one 5-field line per file: a header field holding a tab or a newline cannot
    # shift the answers onto other files.
    if rc != 0 or len(lines) != len(files) or any(len(ln.split("\t")) != 5 for ln in lines):
        return Check("headers", "fail", "rpm -qp could not read every RPM header of the bundle "
                     "(exit %d, %d answers for %d files; rpm's words are in the log)" % (
                         rc, len(lines), len(files)),
                     "the bundle is damaged or was altered: copy the bundle again from the source")
    wrong = []
    for pkg, line in zip(bundle.packages, lines):
        name, epoch, version, release, arch = line.split("\t")
        header = (name, int(epoch) if re.match(r"^[0-9]{1,9}\Z", epoch) else epoch, version,
                  release, arch)
        if header != (pkg.name, pkg.epoch, pkg.version, pkg.release, pkg.arch):
            held = "%s-%s:%s-%s.%s" % header if header[1] else "%s-%s-%s.%s" % (
                name, version, release, arch)
            wrong.append("%s holds %s (its RPM header), the manifest says %s" % (
                pkg.file, printable(held), pkg.nevra))
    if wrong:
        s.log("manifest/header mismatches:\n  " + "\n  ".join(wrong))
        more = " (+%d more)" % (len(wrong) - 1) if len(wrong) > 1 else ""
        return Check("headers", "fail", wrong[0] + more,
                     "the manifest does not describe the bundle's RPMs (altered or damaged): "
                     "copy the bundle again from the source, or rebuild it")
    return Check("headers", "pass", "%d RPM headers match the manifest (name, epoch, version, "
                 "release, arch)" % len(files))


def check_remove_policy(s, bundle):
    """The manifest's remove list may name only CentOS's old docker packages
    (OLD_DOCKER_PACKAGES), what docker-ce's specs conflict with (KNOWN_CONFLICTS) and what the
    bundle's own RPMs Conflict with or Obsolete (their headers): a manifest must not get a
    root process to remove openssh-server.  make_plan removes nothing else either way."""
    allowed = set(OLD_DOCKER_PACKAGES) | set(KNOWN_CONFLICTS) | set(bundle_conflicts(s, bundle))
    refused = [name for name in bundle.remove if name not in allowed]
    if refused:
        named = ", ".join(refused[:3]) + (
            " (+%d more)" % (len(refused) - 3) if len(refused) > 3 else "")
        return Check("remove-list", "fail", "the manifest asks to remove %s: %s" % (named, (
            "not an old docker package, and no RPM of the bundle conflicts with or obsoletes it"
            if len(refused) == 1 else "not old docker packages, and no RPM of the bundle "
            "conflicts with or obsoletes them")),
                     "the manifest was altered: copy the bundle again from the source, or "
                     "rebuild it (airdock removes only the old docker packages and what "
                     "docker-ce conflicts with)")
    return Check("remove-list", "pass", "the manifest removes only old docker packages and what "
                 "the bundle's RPMs conflict with (%d names)" % len(bundle.remove))


def check_conflicts(plan):
    if not plan.remove:
        return Check("conflicts", "pass", "no conflicting packages installed")
    return Check("conflicts", "warn", "removed in the same transaction: %s" % (
        ", ".join(plan.remove)),
        "nothing to do: they conflict with docker-ce (/usr/bin/docker and more)")


def check_existing(plan, bundle):
    current = plan.docker_ce_installed
    target = plan.package("docker-ce")
    if plan.downgrade:
        pkg, have = plan.downgrade[0]
        return Check("docker-ce", "fail", "%s %s is installed, newer than the bundle's %s" % (
            pkg.name, have, pkg.evr), "uninstall first (`./install.sh uninstall` keeps your data) "
            "or use a newer bundle")
    if not current:
        return Check("docker-ce", "pass", "not installed: will install %s" % (
            target.evr if target else bundle.docker_version))
    if target and evr_compare(target.evr_tuple, current) == 0:
        return Check("docker-ce", "pass", "%s already installed: re-running ensures the "
                     "service and images" % evr_string(current))
    return Check("docker-ce", "pass", "upgrade %s -> %s (images and containers are kept)" % (
        evr_string(current), target.evr if target else "?"))


def check_transaction(s, bundle, plan):
    """yum's own answer, with every repo disabled, before anything changes."""
    if plan.nothing_to_do:
        return Check("transaction", "pass", "nothing to change: all packages already installed")
    script = write_shell_script(s, plan)
    cmd = ["yum", "-y", "--disablerepo=*", "--nogpgcheck", "--setopt=tsflags=test",
           "--setopt=skip_broken=0", "shell", script]
    rc, out = s.run(cmd, check=False, quiet=True)
    result = parse_yum_output(out)
    plan.extra_removals = result["extra_removals"]
    if result["missing"]:
        needs = ", ".join("%s (needed by %s)" % (cap, by) for cap, by in result["missing"][:4])
        s.result["missing_dependencies"] = [
            {"requires": cap, "needed_by": by} for cap, by in result["missing"]]
        return Check("transaction", "fail", "this host lacks what the bundle needs: %s" % needs,
                     "the bundle was built for %s (closure %s): rebuild it on the connected "
                     "machine with `airdock build --closure full` (same options), or install "
                     "those packages from this host's own media" % (
                         bundle.target.get("baseline", "?"), bundle.target.get("closure", "?")))
    if result["conflicts"]:
        return Check("transaction", "fail", "yum reports a conflict: %s" % result["conflicts"][0],
                     "remove the conflicting package first (yum remove ...) and run check again")
    if not result["ok"]:
        return Check("transaction", "fail", "the yum test transaction failed: %s" % (
            last_error_line(out) or "see the log"), "read the log, fix it and run check again")
    summary = "%d to install, %d to upgrade, %d to remove" % (
        len(plan.install), len(plan.upgrade), len(plan.remove) + len(plan.extra_removals))
    if plan.extra_removals:
        return Check("transaction", "warn", "yum test transaction OK (%s); it also removes %s, "
                     "which need the removed packages" % (summary, ", ".join(plan.extra_removals)),
                     "if you still need them, do not install this bundle")
    return Check("transaction", "pass",
                 "yum test transaction OK, every repo disabled (%s)" % summary)


# =====================================================================================
# the bundle
# =====================================================================================


class Package(object):
    def __init__(self, entry, root):
        self.entry = entry
        self.name = entry["name"]
        self.epoch = int(entry.get("epoch") or 0)
        self.version = entry["version"]
        self.release = entry["release"]
        self.arch = entry["arch"]
        self.file = entry["file"]
        self.size = entry.get("size")
        self.sha256 = entry.get("sha256")
        self.signing_key = entry.get("signing_key")
        self.requested = bool(entry.get("requested"))
        self.path = os.path.join(root, self.file)

    @property
    def evr_tuple(self):
        return (self.epoch, self.version, self.release)

    @property
    def evr(self):
        return evr_string(self.evr_tuple)

    @property
    def nevra(self):
        return "%s-%s.%s" % (self.name, self.evr, self.arch)


class Key(object):
    def __init__(self, entry, root):
        self.file = entry.get("file", "")
        self.path = os.path.join(root, self.file)
        self.manifest_fingerprint = (entry.get("fingerprint") or "").replace(" ", "").upper()
        self.manifest_ids = [k.lower() for k in entry.get("key_ids", [])]
        keys = []
        try:
            with open(self.path, "rb") as handle:
                keys = openpgp_keys(handle.read())
        except Exception:  # unreadable or not a key: the signatures check says so
            keys = []
        self.fingerprint = keys[0]["fingerprint"] if keys else None
        self.key_ids = [k["key_id"] for k in keys] or self.manifest_ids
        if self.fingerprint:
            self.short_id = self.fingerprint[-8:].lower()
        else:
            self.short_id = (self.manifest_ids[0] if self.manifest_ids else "00000000")[-8:]


class Bundle(object):
    def __init__(self, root, manifest, manifest_sha256):
        self.root = root
        self.manifest = manifest
        self.manifest_sha256 = manifest_sha256
        self.name = manifest.get("name") or os.path.basename(root)
        self.docker_version = manifest.get("docker_version", "?")
        self.target = manifest.get("target") or {}
        self.arch = self.target.get("arch", "?")
        self.packages = [Package(p, root) for p in manifest.get("packages", [])]
        self.images = list(manifest.get("images") or [])
        self.keys = [Key(k, root) for k in manifest.get("keys", [])]
        self.remove = list(manifest.get("remove") or [])
        self.conflict_names = None  # bundle_conflicts() fills it once

    def path(self, rel):
        return os.path.join(self.root, rel)


class Trust(object):
    """What vouches for a bundle: publisher keys this host trusts, and what the check found."""

    def __init__(self):
        self.root = []          # openpgp_keys dicts, each with a "source"
        self.given = []         # (path, keys) of --trust-key files: install stores them
        self.fingerprints = []  # --trust-fingerprint: trust keys/publisher.asc with these
        self.verified = None    # primary fingerprint of the trusted key that signed
        self.signer = None      # who signed, trusted or not
        self.sums_sha256 = None

    @property
    def exists(self):
        return bool(self.root or self.fingerprints)

    @property
    def label(self):
        if self.verified:
            return "signed-by %s" % self.verified
        return "unverified" if self.signer else "unsigned"

    def describe(self):
        sources = sorted(set(k["source"] for k in self.root))
        if self.fingerprints:
            sources.append("--trust-fingerprint")
        return ", ".join(sources)

    def source_of(self, fingerprint):
        for key in self.root:
            if key["primary"] == fingerprint:
                return "trusted: %s" % key["source"]
        return "trusted: --trust-fingerprint"


def load_trust(s, args):
    trust = Trust()
    files = []
    if os.path.isdir(TRUST_DIR):
        files = [(os.path.join(TRUST_DIR, n), os.path.join(TRUST_DIR, n))
                 for n in sorted(os.listdir(TRUST_DIR)) if n.endswith(".asc")]
    files += [(path, "--trust-key %s" % path) for path in getattr(args, "trust_key", [])]
    for path, source in files:
        try:
            with open(path, "rb") as handle:
                keys = [k for k in openpgp_keys(handle.read()) if k.get("n")]
        except (IOError, OSError, ValueError, TypeError, IndexError, struct.error):
            keys = []
        if not keys:
            raise Failure("%s is not a readable OpenPGP RSA public key" % path,
                          "give the publisher's ASCII-armoured public key (gpg --armor --export)")
        for key in keys:
            key["source"] = source
        trust.root.extend(keys)
        if source.startswith("--trust-key"):
            trust.given.append((path, keys))
    for value in getattr(args, "trust_fingerprint", []):
        fpr = value.replace(" ", "").upper()
        if not re.match(r"^[0-9A-F]{40}$", fpr):
            raise Failure("--trust-fingerprint %s is not a 40-hex fingerprint" % value,
                          "copy the full fingerprint the publisher gave (gpg --fingerprint)", 2)
        trust.fingerprints.append(fpr)
    return trust


def publisher_keys(bundle):
    """The bundle's own keys/publisher.asc: never trusted by itself, only matched against a
    --trust-fingerprint or shown to the operator."""
    try:
        with open(bundle.path("keys/publisher.asc"), "rb") as handle:
            return openpgp_keys(handle.read())
    except (IOError, OSError, ValueError):
        return []


def load_bundle(s, root, required=True):
    """Read, validate (validate_manifest) and model manifest.json.  A manifest that cannot be
    used is one Failure line (exit 1): the installer runs as root and the bundle is input."""
    root = os.path.abspath(root)
    path = os.path.join(root, "manifest.json")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MANIFEST_MAX_BYTES + 1)
    except (IOError, OSError) as exc:
        if not required:
            return None
        raise Failure("cannot read %s: %s" % (path, exc.strerror or exc),
                      "run install.sh from the unpacked bundle folder (or pass --bundle DIR)")
    damaged = "the bundle is damaged or was altered: copy it again from the source, or rebuild it"
    if len(data) > MANIFEST_MAX_BYTES:
        raise Failure("%s is larger than %s, which no airdock bundle's manifest is" % (
            path, human_size(MANIFEST_MAX_BYTES)), damaged)
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (ValueError, RuntimeError) as exc:  # RuntimeError: nested too deep to parse
        raise Failure("%s is not valid JSON (%s)" % (path, one_line(str(exc))), damaged)
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise Failure("%s is not an airdock bundle manifest" % path, "re-copy the bundle")
    try:
        check_format_version(manifest.get("format_version"))
        validate_manifest(manifest)
    except ManifestProblem as exc:
        raise Failure("%s is malformed: %s" % (path, exc), damaged)
    bundle = Bundle(root, manifest, hashlib.sha256(data).hexdigest())
    s.result["bundle"] = {"name": bundle.name, "docker_version": bundle.docker_version,
                          "arch": bundle.arch, "path": root}
    return bundle


def check_format_version(version):
    """An int this installer knows; a newer one means a newer airdock made the bundle."""
    if not isinstance(version, INT_TYPES) or isinstance(version, bool):
        raise ManifestProblem("format_version is %s, not an integer" % shown(version))
    if version in KNOWN_FORMAT_VERSIONS:
        return
    knows = ", ".join(str(v) for v in KNOWN_FORMAT_VERSIONS)
    if version > max(KNOWN_FORMAT_VERSIONS):
        raise Failure("this bundle was made by a newer airdock (manifest format_version %d; this "
                      "installer knows %s)" % (version, knows),
                      "run the install.sh inside that bundle: each bundle carries its own "
                      "installer")
    raise Failure("the bundle's manifest has format_version %d, which no airdock writes (this "
                  "installer knows %s)" % (version, knows),
                  "the bundle is damaged or was altered: copy it again from the source")


# What the manifest's strings must look like (the shapes rpm, yum, docker and the builder use,
# as builder/names.py checks them): ASCII, no whitespace, no control character, no "/" in a
# name; \Z, not $, so that a trailing newline does not slip through.
NAME_RE = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9._+-]*\Z")
VERSION_RE = re.compile(r"^[A-Za-z0-9._+~^]+\Z")
FILE_NAME = r"[A-Za-z0-9_+][A-Za-z0-9._+~^-]*"
BUNDLE_NAME_RE = re.compile("^" + FILE_NAME + r"\Z")
RPM_FILE_RE = re.compile("^rpms/" + FILE_NAME + r"\.rpm\Z")
IMAGE_FILE_RE = re.compile("^images/" + FILE_NAME + r"\.tar\Z")
KEY_FILE_RE = re.compile("^keys/" + FILE_NAME + r"\.asc\Z")
SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")
IMAGE_ID_RE = re.compile(r"^sha256:[0-9a-f]{64}\Z")
FINGERPRINT_RE = re.compile(r"^[0-9A-Fa-f]{40}\Z")
KEY_ID_RE = re.compile(r"^[0-9A-Fa-f]{16}\Z")
IMAGE_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*\Z")  # never an option (-...)
TEXT_RE = re.compile(r"^[ -~]*\Z")  # printable ASCII: text that is only shown

NAME_SHAPE = "a package name (letters, digits and ._+-)"
VERSION_SHAPE = "an RPM version (letters, digits and ._+~^)"
FILE_SHAPE = "a plain name (letters, digits and ._+~^-)"
IN_FOLDER_SHAPE = "%s/<name>.%s with <name> " + FILE_SHAPE


class ManifestProblem(Exception):
    """What in manifest.json does not fit its schema (load_bundle makes it a Failure)."""


def validate_manifest(manifest):
    """Walk manifest.json's schema (docs/bundle-format.md) for everything the installer uses:
    required keys, types, lists of objects, names, versions and file names of the shapes above,
    known architectures, sizes and epochs as integers >= 0.  Raises ManifestProblem naming the
    first thing that does not fit; keys the installer does not use are ignored."""
    top = "the manifest"
    text_field(manifest, "name", top, BUNDLE_NAME_RE, FILE_SHAPE, required=False)
    text_field(manifest, "docker_version", top, VERSION_RE, VERSION_SHAPE)
    target = object_field(manifest, "target", top)
    arch = text_field(target, "arch", "target", None, "")
    if arch not in KNOWN_ARCHES:
        raise ManifestProblem("target.arch is %s, not an architecture this installer knows (%s)"
                              % (shown(arch), ", ".join(KNOWN_ARCHES)))
    for key in ("baseline", "closure"):  # shown in messages
        text_field(target, key, "target", TEXT_RE, "printable text", required=False)
    for index, name in enumerate(list_field(manifest, "requested", top, required=False)):
        check_value(name, "requested[%d]" % index, NAME_RE, NAME_SHAPE)
    for index, name in enumerate(list_field(manifest, "remove", top, required=False)):
        check_value(name, "remove[%d]" % index, NAME_RE, NAME_SHAPE)
    packages = list_field(manifest, "packages", top)
    if not packages:
        raise ManifestProblem("packages is empty: the bundle holds no RPM")
    files = set()
    for index, entry in enumerate(packages):
        where = "packages[%d]" % index
        expect(isinstance(entry, dict), where, entry, "an object")
        name = text_field(entry, "name", where, NAME_RE, NAME_SHAPE)
        where = "%s (%s)" % (where, name)
        int_field(entry, "epoch", where)
        text_field(entry, "version", where, VERSION_RE, VERSION_SHAPE)
        text_field(entry, "release", where, VERSION_RE, VERSION_SHAPE.replace("version", "release"))
        pkg_arch = text_field(entry, "arch", where, None, "")
        expect(pkg_arch in (arch, "noarch"), where + ".arch", pkg_arch,
               "%s or noarch (the bundle's target.arch)" % arch)
        files.add(unique_file(entry, where, RPM_FILE_RE, IN_FOLDER_SHAPE % ("rpms", "rpm"), files))
        int_field(entry, "size", where)
        text_field(entry, "sha256", where, SHA256_RE, "64 lowercase hex digits")
        if entry.get("signing_key") is not None:
            text_field(entry, "signing_key", where, KEY_ID_RE, "a 16-hex-digit key ID")
        if "requested" in entry:
            expect(isinstance(entry["requested"], bool), where + ".requested", entry["requested"],
                   "true or false")
    for index, entry in enumerate(list_field(manifest, "keys", top)):
        where = "keys[%d]" % index
        expect(isinstance(entry, dict), where, entry, "an object")
        files.add(unique_file(entry, where, KEY_FILE_RE, IN_FOLDER_SHAPE % ("keys", "asc"), files))
        text_field(entry, "fingerprint", where, FINGERPRINT_RE, "a 40-hex-digit fingerprint")
        for number, key_id in enumerate(list_field(entry, "key_ids", where, required=False)):
            check_value(key_id, "%s.key_ids[%d]" % (where, number), KEY_ID_RE,
                        "a 16-hex-digit key ID")
    for index, entry in enumerate(list_field(manifest, "images", top, required=False)):
        where = "images[%d]" % index
        expect(isinstance(entry, dict), where, entry, "an object")
        tag = text_field(entry, "repo_tag", where, IMAGE_REF_RE, "an image name:tag")
        where = "%s (%s)" % (where, tag)
        files.add(unique_file(entry, where, IMAGE_FILE_RE, IN_FOLDER_SHAPE % ("images", "tar"),
                              files))
        int_field(entry, "size", where)
        text_field(entry, "sha256", where, SHA256_RE, "64 lowercase hex digits")
        if entry.get("config_digest") is not None:
            text_field(entry, "config_digest", where, IMAGE_ID_RE, "sha256:<64 lowercase hex>")


def expect(ok, where, value, wanted):
    if not ok:
        raise ManifestProblem("%s is %s, not %s" % (where, shown(value), wanted))


def check_value(value, where, pattern, wanted):
    expect(isinstance(value, TEXT_TYPES) and 0 < len(value) <= 512 and
           (pattern is None or pattern.match(value)), where, value, wanted or "a string")
    return value


def present(obj, key, where, required):
    if key in obj:
        return True
    if required:
        raise ManifestProblem("%s has no \"%s\"" % (where, key))
    return False


def text_field(obj, key, where, pattern, wanted, required=True):
    if not present(obj, key, where, required):
        return None
    return check_value(obj[key], "%s.%s" % (where, key) if where != "the manifest" else key,
                       pattern, wanted)


def int_field(obj, key, where, required=True):
    if not present(obj, key, where, required):
        return None
    value = obj[key]
    expect(isinstance(value, INT_TYPES) and not isinstance(value, bool) and value >= 0,
           "%s.%s" % (where, key), value, "an integer >= 0")
    return value


def list_field(obj, key, where, required=True):
    if not present(obj, key, where, required):
        return []
    expect(isinstance(obj[key], list), key if where == "the manifest" else "%s.%s" % (where, key),
           obj[key], "a list")
    return obj[key]


def object_field(obj, key, where):
    present(obj, key, where, True)
    expect(isinstance(obj[key], dict), key, obj[key], "an object")
    return obj[key]


def unique_file(entry, where, pattern, wanted, seen):
    rel = text_field(entry, "file", where, pattern, wanted)
    if rel in seen:
        raise ManifestProblem("%s.file %s is listed twice" % (where, shown(rel)))
    return rel


def shown(value):
    """A manifest value in a message: JSON (control characters escaped), cut short; lists and
    objects only by their kind."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value)
    return text if len(text) <= 72 else text[:69] + "..."


def verify_bundle_files(bundle):
    """(problems, files verified, files present but not listed)."""
    sums_path = bundle.path("SHA256SUMS")
    try:
        with open(sums_path, "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
    except (IOError, OSError) as exc:
        return ["cannot read SHA256SUMS (%s)" % (exc.strerror or exc)], 0, []
    listed = {}
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = re.match(r"^([0-9a-fA-F]{64}) [ *](.+)$", line)
        rel = match.group(2) if match else ""
        if not match or rel.startswith("/") or ".." in rel.split("/"):
            problems.append("SHA256SUMS line %d is malformed" % number)
            continue
        listed[rel] = match.group(1).lower()
    for rel in sorted(listed):
        path = bundle.path(rel)
        if not os.path.isfile(path):
            problems.append("%s is missing" % rel)
            continue
        actual = file_sha256(path)
        if actual != listed[rel]:
            problems.append("%s: sha256 %s, SHA256SUMS says %s" % (rel, actual, listed[rel]))
    expected = [(p.file, p.sha256) for p in bundle.packages]
    expected += [(i.get("file"), i.get("sha256")) for i in bundle.images]
    expected += [(k.file, None) for k in bundle.keys]
    expected += [("manifest.json", None)]
    for rel, digest in expected:
        if rel not in listed:
            problems.append("%s is not listed in SHA256SUMS" % rel)
        elif digest and digest.lower() != listed[rel]:
            problems.append("%s: manifest.json and SHA256SUMS disagree" % rel)
    extra = []
    for folder in ("rpms", "images", "keys"):
        for rel in walk_files(bundle.root, folder):
            if rel not in listed:
                extra.append(rel)
    return problems, len(listed), extra


# =====================================================================================
# the plan: what the one transaction installs, upgrades and removes
# =====================================================================================


class Plan(object):
    def __init__(self):
        self.install = []       # Package: not installed yet
        self.upgrade = []       # (Package, installed EVR string)
        self.present = []       # Package: this EVR is installed
        self.downgrade = []     # like newer, for docker's own packages: refused
        self.remove = []        # installed NEVRAs that conflict
        self.extra_removals = []  # what yum adds to the removals (dependents), from the test run
        self.docker_ce_installed = None
        self.packages = []

    @property
    def nothing_to_do(self):
        return not (self.install or self.upgrade or self.remove)

    def package(self, name):
        for pkg in self.packages:
            if pkg.name == name:
                return pkg
        return None

    def managed_names(self):
        """What uninstall may remove: what this install added, plus docker's own packages
        (upgraded or already there).  An upgraded base package (policycoreutils) was the
        host's before and stays the host's."""
        ours = [p for p, _ in self.upgrade] + self.present
        return [p.name for p in self.install] + [
            p.name for p in ours if p.name in DOCKER_PACKAGES or p.requested]


def make_plan(s, bundle, host):
    plan = Plan()
    plan.packages = bundle.packages
    names = [p.name for p in bundle.packages]
    conflict_names = bundle_conflicts(s, bundle)
    # The manifest's remove list adds nothing here: check_remove_policy allows in it only
    # names that are candidates anyway.
    candidates = set(OLD_DOCKER_PACKAGES) | set(KNOWN_CONFLICTS) | set(conflict_names)
    candidates -= set(names)
    installed = host.installed(sorted(set(names) | candidates | set(["docker-ce"])))
    for pkg in bundle.packages:
        have = installed.get(pkg.name)
        if not have:
            plan.install.append(pkg)
            continue
        current = max_evr(have)
        cmp = evr_compare(pkg.evr_tuple, current)
        if cmp > 0:
            plan.upgrade.append((pkg, evr_string(current)))
        elif cmp == 0:
            plan.present.append(pkg)
        elif pkg.name in DOCKER_PACKAGES:
            plan.downgrade.append((pkg, evr_string(current)))
        # else: a dependency the host already has in a newer version: left alone
    for name in sorted(candidates):
        for evr in installed.get(name, []):
            plan.remove.append(nevra_string(name, evr))
    if installed.get("docker-ce"):
        plan.docker_ce_installed = max_evr(installed["docker-ce"])
    return plan


def bundle_conflicts(s, bundle):
    """Names the bundle's RPMs Conflict with or Obsolete (rpm -qp; read-only), asked once."""
    if bundle.conflict_names is not None:
        return bundle.conflict_names
    bundle.conflict_names = []
    files = [p.path for p in bundle.packages if os.path.isfile(p.path)]
    if not files:
        return []
    rc, out = s.run(["rpm", "-qp", "--nosignature", "--qf",
                     "[C %{CONFLICTNAME}\\n][O %{OBSOLETENAME}\\n]"] + files,
                    check=False, quiet=True, stderr=False)
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("C", "O"):
            names.add(parts[1])
    bundle.conflict_names = sorted(names)
    return bundle.conflict_names


def write_shell_script(s, plan):
    """The yum shell script: install first (yum and dnf refuse local files after a remove),
    then remove, then run: one transaction."""
    lines = []
    paths = [p.path for p in plan.install] + [p.path for p, _ in plan.upgrade]
    if paths:
        lines.append("install " + " ".join(shell_quote(p) for p in paths))
    if plan.remove:
        lines.append("remove " + " ".join(shell_quote(nevra_nvra(n)) for n in plan.remove))
    lines.append("run")
    handle, path = tempfile.mkstemp(prefix="airdock-yum-", suffix=".txt")
    os.write(handle, ("\n".join(lines) + "\n").encode("utf-8"))
    os.close(handle)
    s.cleanup.append(path)
    s.log("yum shell script %s:\n  %s" % (path, "\n  ".join(lines)))
    return path


def transaction_problems(plan, host):
    problems = []
    wanted = [p for p in plan.install] + [p for p, _ in plan.upgrade]
    installed = host.installed(sorted(set([p.name for p in wanted] + [
        nevra_name(n) for n in plan.remove])))
    for pkg in wanted:
        if not any(evr_compare(pkg.evr_tuple, evr) == 0 for evr in installed.get(pkg.name, [])):
            problems.append("%s is not installed" % pkg.nevra)
    for nevra in plan.remove:
        name = nevra_name(nevra)
        if any(nevra_string(name, evr) == nevra for evr in installed.get(name, [])):
            problems.append("%s is still installed" % nevra)
    return problems


def remove_keys(s, names):
    for name in names:
        s.run(["rpm", "-e", name], change=True, check=False)


def needed_by_others(s, host, nevras):
    """Which of nevras must stay because packages outside the set need them: rpm -e --test,
    repeated until it passes.  Docker's own packages are never kept silently."""
    keep = []
    candidates = list(nevras)
    for _ in range(len(nevras) + 1):
        if not candidates:
            break
        rc, out = s.run(["rpm", "-e", "--test"] + [nevra_nvra(n) for n in candidates],
                        check=False, quiet=True)
        if rc == 0:
            break
        needs = re.findall(r"^\s*(.+?) is needed by \(installed\) (\S+)", out, re.M)
        blockers = {}
        for cap, by in needs:
            for provider in host.what_provides(cap.split()[0]):
                if provider in candidates:
                    blockers.setdefault(provider, by)
        core = [n for n in blockers if nevra_name(n) in DOCKER_PACKAGES]
        if core:
            raise Failure("cannot uninstall: %s needs %s, and airdock did not install it" % (
                blockers[core[0]], nevra_name(core[0])),
                "remove %s first (yum remove), then run uninstall again" % blockers[core[0]])
        if not blockers:
            raise Failure("rpm refuses to remove the docker packages: %s" % last_error_line(out),
                          "see the log; nothing was removed")
        for nevra, by in sorted(blockers.items()):
            keep.append((nevra, "needed by %s" % by))
            candidates.remove(nevra)
    return keep


# =====================================================================================
# host facts
# =====================================================================================


class Host(object):
    """What the installer reads from the host (cached), through files and rpm."""

    def __init__(self, s):
        self.s = s
        self.euid = os.geteuid()
        self.machine = os.uname()[4]
        self._installed = {}

    def read_first(self, paths):
        for path in paths:
            try:
                with open(path, "rb") as handle:
                    text = handle.read().decode("utf-8", "replace")
                if text.strip():
                    return text
            except (IOError, OSError):
                continue
        return None

    def os_release(self):
        text = self.read_first((OS_RELEASE,))
        if text:
            return parse_os_release(text)
        return parse_release_file(self.read_first(OS_RELEASE_FALLBACKS) or "")

    def kernel_release(self):
        return (self.read_first((KERNEL_RELEASE,)) or "").strip()

    def has(self, tool):
        return which(tool) is not None

    def selinux_mode(self):
        enforce = self.read_first(("/sys/fs/selinux/enforce",))
        if enforce is not None:
            return "enforcing" if enforce.strip() == "1" else "permissive"
        config = self.read_first(("/etc/selinux/config",)) or ""
        match = re.search(r"^\s*SELINUX\s*=\s*(\w+)", config, re.M)
        if match and match.group(1).lower() != "disabled":
            return "%s in /etc/selinux/config, not active now" % match.group(1).lower()
        return "disabled"

    def forget(self):
        self._installed = {}

    def installed(self, names):
        """{name: [(epoch, version, release, arch), ...]} for the names that are installed."""
        todo = [n for n in names if n not in self._installed]
        if todo:
            for name in todo:
                self._installed[name] = []
            rc, out = self.s.run(["rpm", "-q", "--qf",
                                  "%{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n"]
                                 + todo, check=False, quiet=True, stderr=False)
            for line in out.splitlines():
                parts = line.split("\t")
                if len(parts) == 5 and parts[0] in self._installed:
                    epoch = 0 if parts[1] in ("(none)", "") else int(parts[1])
                    self._installed[parts[0]].append((epoch, parts[2], parts[3], parts[4]))
        return dict((n, self._installed[n]) for n in names if self._installed.get(n))

    def all_packages(self):
        rc, out = self.s.run(["rpm", "-qa", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\\n"],
                             check=False, quiet=True, stderr=False)
        return sorted(line.strip() for line in out.splitlines() if line.strip())

    def signing_key_ids(self):
        """Key ids (lower-case hex) that signed the installed packages."""
        rc, out = self.s.run(["rpm", "-qa", "--qf", "%{SIGPGP:pgpsig}|%{RSAHEADER:pgpsig}\\n"],
                             check=False, quiet=True, stderr=False)
        return set(m.lower() for m in re.findall(r"Key ID ([0-9a-fA-F]{8,16})", out))

    def imported_key_ids(self):
        rc, out = self.s.run(["rpm", "-q", "gpg-pubkey", "--qf", "%{VERSION}\\n"], check=False,
                             quiet=True, stderr=False)
        return set(line.strip().lower() for line in out.splitlines()
                   if re.match(r"^[0-9a-fA-F]{8}$", line.strip()))

    def what_provides(self, capability):
        rc, out = self.s.run(["rpm", "-q", "--whatprovides", capability, "--qf",
                              "%{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n"],
                             check=False, quiet=True, stderr=False)
        found = []
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) == 5:
                epoch = 0 if parts[1] in ("(none)", "") else int(parts[1])
                found.append(nevra_string(parts[0], (epoch, parts[2], parts[3], parts[4])))
        return found


def parse_os_release(text):
    info = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        info[key.strip()] = value
    return info


def parse_release_file(text):
    """CentOS 6 has no /etc/os-release: 'CentOS release 6.10 (Final)'."""
    match = re.search(r"^(.*?) (?:Linux )?release (\d+(?:\.\d+)*)", text.strip())
    if not match:
        return {}
    name = match.group(1).strip()
    lowered = name.lower()
    os_id = "centos" if "centos" in lowered else (
        "rhel" if "red hat" in lowered else lowered.split()[0] if lowered else "")
    return {"ID": os_id, "VERSION_ID": match.group(2), "PRETTY_NAME": text.strip().splitlines()[0]}


def parse_kernel_release(release):
    """'3.10.0-1160.el7.x86_64' -> (3, 10, 0, 1160); None when unreadable."""
    match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:-(\d+))?", release or "")
    if not match:
        return None
    build = match.group(4)
    return (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0),
            int(build) if build is not None else None)


def normalize_arch(arch):
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)


def existing_parent(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def free_bytes(path):
    try:
        st = os.statvfs(existing_parent(path))
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def mount_of(path):
    """(mount point, fstype) of the filesystem holding path, from /proc/mounts."""
    real = os.path.realpath(path)
    best = None
    try:
        with open("/proc/mounts") as handle:
            lines = handle.read().splitlines()
    except (IOError, OSError):
        return None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        if real == point or real.startswith(point.rstrip("/") + "/"):
            if best is None or len(point) >= len(best[0]):
                best = (point, parts[2])
    return best


def mounts_under(path):
    """Mount points strictly below path (deleting through them would delete their contents)."""
    prefix = os.path.realpath(path).rstrip("/") + "/"
    found = []
    try:
        with open("/proc/mounts") as handle:
            for line in handle.read().splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[1].replace("\\040", " ").startswith(prefix):
                    found.append(parts[1].replace("\\040", " "))
    except (IOError, OSError):
        pass
    return found


def which(tool):
    for folder in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(os.pathsep):
        path = os.path.join(folder, tool)
        if folder and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


# =====================================================================================
# rpm, yum and docker plumbing
# =====================================================================================


def rpm_checksig(s, bundle):
    """rpm -K every package against a temporary rpmdb that holds only the bundle's keys."""
    tmp = tempfile.mkdtemp(prefix="airdock-rpmdb-")
    try:
        s.run(["rpm", "--dbpath", tmp, "--initdb"], check=False, quiet=True)
        for key in bundle.keys:
            s.run(["rpm", "--dbpath", tmp, "--import", key.path], quiet=True,
                  fail="cannot read the key %s" % key.file, fix="re-copy the bundle")
        files = [p.path for p in bundle.packages]
        rc, out = s.run(["rpm", "--dbpath", tmp, "-K"] + files, check=False, quiet=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    bad = []
    for pkg in bundle.packages:
        line = ""
        for candidate in out.splitlines():
            if candidate.startswith(pkg.path + ":"):
                line = candidate[len(pkg.path) + 1:].strip()
        lowered = line.lower()
        signed = "pgp" in lowered or "gpg" in lowered or "signatures" in lowered
        if not line or "NOT OK" in line or "BAD" in line or not signed:
            bad.append("%s: %s" % (pkg.file, line or "no answer from rpm -K"))
    if rc != 0 and not bad:
        bad.append("rpm -K failed: %s" % last_error_line(out))
    return bad


# yum's "Error:" prefix, also as a zh_CN yum prints it ("\u9519\u8bef\uff1a", full-width
# colon; yum-transcripts T9 in tests/data/real-el7/), and its conflict error (T5).
YUM_ERROR_PACKAGE = re.compile(u"^\\s*(?:Error|\u9519\u8bef)\\s*[:\uff1a]\\s*Package: (\\S+)")
YUM_ERROR_CONFLICT = re.compile(u"^\\s*(?:Error|\u9519\u8bef)\\s*[:\uff1a]\\s*\\S+ conflicts\\b")


def parse_yum_output(text):
    """Problems in yum's (EL7) or dnf's output: missing requirements, conflicts, success."""
    missing = []
    conflicts = []
    extra = []
    package = None
    section = None
    for line in text.splitlines():
        match = YUM_ERROR_PACKAGE.match(line)
        if match:
            package = match.group(1)
            continue
        match = re.match(r"^\s*Requires: (.+?)\s*$", line)
        if match and package:
            missing.append((match.group(1), package))
            continue
        match = re.search(r"nothing provides (.+?) needed by (\S+)", line)
        if match:
            missing.append((match.group(1), match.group(2)))
            continue
        match = re.search(r"Missing Dependency: (.+?) is needed by package (\S+)", line)
        if match:
            missing.append((match.group(1), match.group(2)))
            continue
        if ("conflicts with" in line or YUM_ERROR_CONFLICT.match(line)) and (
                line.strip() not in conflicts):
            conflicts.append(line.strip().lstrip("- ").strip())
        if re.match(r"^\s*(Removing for dependencies|Removing dependent packages):", line):
            section = "extra"
            continue
        if section == "extra":
            fields = line.split()
            if not fields or line.strip().endswith(":") or line.startswith("="):
                section = None
            elif len(fields) >= 3 and line.startswith(" "):
                extra.append(fields[0])
    seen = set()
    unique = []
    for item in missing:
        if item not in seen:
            seen.add(item)
            unique.append(item)
    ok = "transaction test succeeded" in text.lower()
    return {"missing": unique, "conflicts": conflicts, "extra_removals": extra, "ok": ok}


def yum_history_last_id(s):
    """The newest yum history ID, or None."""
    return yum_history_newest(s)[0]


def yum_history_newest(s):
    """(newest yum history ID, None) or (None, why there is none)."""
    rc, out = s.run(["yum", "--disablerepo=*", "history", "list"], check=False, quiet=True)
    ids = [int(m) for m in re.findall(r"^\s*(\d+)\s+\|", out, re.M)]
    if ids:
        return max(ids), None
    if rc != 0:
        return None, "`yum history list` failed (exit %d): %s" % (rc, one_line(
            last_error_line(out)))
    return None, "`yum history list` lists no transaction"


def last_error_line(text):
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    # yum ends a failed resolution with hints ("You could try using --skip-broken to work
    # around the problem"): the error is above them (yum-transcripts T1, T4 in tests/data)
    lines = [ln for ln in lines if not ln.startswith("You could try ")] or lines
    for line in reversed(lines):
        lowered = line.lower()
        if "error" in lowered or "fail" in lowered or "problem" in lowered or "not ok" in lowered:
            return line
    return lines[-1] if lines else ""


def docker_image_id(s, repo_tag):
    rc, out = s.run(["docker", "image", "inspect", "--format", "{{.Id}}", repo_tag],
                    check=False, quiet=True, stderr=False)
    value = out.strip()
    return value if rc == 0 and value.startswith("sha256:") else None


def image_name(repo_tag):
    name = repo_tag.rsplit(":", 1)[0] if ":" in repo_tag.split("/")[-1] else repo_tag
    return name.split("/")[-1]


# =====================================================================================
# RPM versions (rpmvercmp) and NEVRA strings
# =====================================================================================


def rpmvercmp(a, b):
    """RPM's version comparison (rpmvercmp.c), tilde and caret included."""
    if a == b:
        return 0
    while a or b:
        a = re.sub(r"^[^A-Za-z0-9~^]+", "", a)
        b = re.sub(r"^[^A-Za-z0-9~^]+", "", b)
        if a.startswith("~") or b.startswith("~"):
            if not a.startswith("~"):
                return 1
            if not b.startswith("~"):
                return -1
            a, b = a[1:], b[1:]
            continue
        if a.startswith("^") or b.startswith("^"):
            if not a:
                return -1
            if not b:
                return 1
            if not a.startswith("^"):
                return 1
            if not b.startswith("^"):
                return -1
            a, b = a[1:], b[1:]
            continue
        if not (a and b):
            break
        if a[0].isdigit():
            seg_a = re.match(r"^[0-9]*", a).group(0)
            seg_b = re.match(r"^[0-9]*", b).group(0)
            numeric = True
        else:
            seg_a = re.match(r"^[A-Za-z]*", a).group(0)
            seg_b = re.match(r"^[A-Za-z]*", b).group(0)
            numeric = False
        if not seg_b:
            return 1 if numeric else -1
        a, b = a[len(seg_a):], b[len(seg_b):]
        if numeric:
            seg_a, seg_b = seg_a.lstrip("0"), seg_b.lstrip("0")
            if len(seg_a) != len(seg_b):
                return 1 if len(seg_a) > len(seg_b) else -1
        if seg_a != seg_b:
            return 1 if seg_a > seg_b else -1
    if not a and not b:
        return 0
    return 1 if a else -1


def evr_compare(left, right):
    """Compare (epoch, version, release[, arch]) tuples like rpm."""
    if int(left[0] or 0) != int(right[0] or 0):
        return 1 if int(left[0] or 0) > int(right[0] or 0) else -1
    result = rpmvercmp(left[1], right[1])
    if result:
        return result
    return rpmvercmp(left[2], right[2])


def max_evr(evrs):
    return sorted(evrs, key=functools.cmp_to_key(evr_compare))[-1]


def evr_string(evr):
    epoch = int(evr[0] or 0)
    return ("%d:" % epoch if epoch else "") + "%s-%s" % (evr[1], evr[2])


def nevra_string(name, evr):
    return "%s-%s.%s" % (name, evr_string(evr), evr[3])


def split_nevra(nevra):
    """'docker-ce-3:26.1.4-1.el7.x86_64' -> (name, epoch, version, release, arch)."""
    match = re.match(r"^(.+)-(?:(\d+):)?([^-]+)-([^-]+)\.([^.]+)$", nevra)
    if not match:
        return (nevra, 0, "", "", "")
    return (match.group(1), int(match.group(2) or 0), match.group(3), match.group(4),
            match.group(5))


def nevra_name(nevra):
    return split_nevra(nevra)[0]


def nevra_nvra(nevra):
    """name-version-release.arch (what rpm -e and yum accept on every version)."""
    name, _, version, release, arch = split_nevra(nevra)
    return "%s-%s-%s.%s" % (name, version, release, arch) if version else nevra


# =====================================================================================
# OpenPGP public keys: fingerprints and key IDs (RFC 4880 v4 keys)
# =====================================================================================


def openpgp_packets(data, block="PUBLIC KEY BLOCK"):
    """[(tag, body)] of an ASCII-armoured (``-----BEGIN PGP <block>-----``) or binary blob."""
    text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
    begin, end = "-----BEGIN PGP %s-----" % block, "-----END PGP %s-----" % block
    if begin in text:
        body = text.split(begin, 1)[1].split(end, 1)[0]
        lines = body.strip().splitlines()
        if "" in [ln.strip() for ln in lines]:  # skip armor headers up to the blank line
            lines = lines[[ln.strip() for ln in lines].index("") + 1:]
        lines = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("=")]
        raw = bytearray(base64.b64decode("".join(lines)))
    else:
        raw = bytearray(data)
    packets = []
    pos = 0
    while pos < len(raw):
        first = raw[pos]
        if not first & 0x80:
            raise ValueError("not an OpenPGP packet")
        if first & 0x40:
            tag = first & 0x3F
            octet = raw[pos + 1]
            if octet < 192:
                length, header = octet, 2
            elif octet < 224:
                length, header = ((octet - 192) << 8) + raw[pos + 2] + 192, 3
            elif octet == 255:
                length = struct.unpack(">I", bytes(raw[pos + 2:pos + 6]))[0]
                header = 6
            else:
                raise ValueError("partial packet lengths are not used in keys or signatures")
        else:
            tag = (first >> 2) & 0x0F
            kind = first & 0x03
            if kind == 0:
                length, header = raw[pos + 1], 2
            elif kind == 1:
                length, header = struct.unpack(">H", bytes(raw[pos + 1:pos + 3]))[0], 3
            elif kind == 2:
                length, header = struct.unpack(">I", bytes(raw[pos + 1:pos + 5]))[0], 5
            else:
                length, header = len(raw) - pos - 1, 1
        if pos + header + length > len(raw):
            raise ValueError("truncated OpenPGP packet")
        packets.append((tag, raw[pos + header:pos + header + length]))
        pos += header + length
    return packets


def openpgp_keys(data):
    """[{fingerprint, key_id, primary, n, e}] for the primary key and subkeys of a key file
    (n and e only for RSA keys, the only ones whose signatures the installer checks)."""
    keys = []
    primary = None
    for tag, body in openpgp_packets(data):
        if tag not in (6, 14) or not body or body[0] != 4:
            continue
        digest = hashlib.sha1(b"\x99" + struct.pack(">H", len(body)) + bytes(body))
        fingerprint = digest.hexdigest().upper()
        if tag == 6:
            primary = fingerprint
        key = {"fingerprint": fingerprint, "key_id": fingerprint[-16:].lower(),
               "primary": primary or fingerprint, "n": None, "e": None}
        if len(body) > 6 and body[5] in (1, 3):  # RSA
            key["n"], at = read_mpi(body, 6)
            key["e"], _ = read_mpi(body, at)
        keys.append(key)
    return keys


def read_mpi(buf, at):
    bits = struct.unpack(">H", bytes(buf[at:at + 2]))[0]
    end = at + 2 + (bits + 7) // 8
    if end > len(buf):
        raise ValueError("truncated number in an OpenPGP packet")
    return int(binascii.hexlify(bytes(buf[at + 2:end])) or b"0", 16), end


# DigestInfo prefixes of EMSA-PKCS1-v1_5 (RFC 4880 5.2.2), by OpenPGP hash algorithm id.
SIGNATURE_HASHES = {
    8: ("sha256", "3031300d060960864801650304020105000420"),
    9: ("sha384", "3041300d060960864801650304020205000430"),
    10: ("sha512", "3051300d060960864801650304020305000440"),
    11: ("sha224", "302d300d06096086480165030402040500041c"),
}


def verify_signature(data, signature, keys):
    """Check a detached v4 RSA signature over ``data`` against ``keys`` (openpgp_keys).

    Returns the primary fingerprint of the key that made it; raises ValueError naming why
    not.  Why by hand: the host's gpg would need a temporary keyring and its output parsed,
    and may be missing; a v4 RSA signature is one packet and one pow(), the same on Python
    2.7 and 3, so every host checks bundles the same way (the tests hold it to gpg's verdict).
    """
    packets = [(t, b) for t, b in openpgp_packets(signature, "SIGNATURE") if t == 2]
    if len(packets) != 1:
        raise ValueError("not a single OpenPGP signature")
    body = packets[0][1]
    if len(body) < 6 or body[0] != 4:
        raise ValueError("not a version 4 signature")
    sig_type, algorithm, hash_id = body[1], body[2], body[3]
    if sig_type != 0:
        raise ValueError("not a signature over a binary document")
    if algorithm not in (1, 3) or hash_id not in SIGNATURE_HASHES:
        raise ValueError("signature algorithm %d/%d is not RSA with SHA-2" % (algorithm, hash_id))
    hashed_len = struct.unpack(">H", bytes(body[4:6]))[0]
    hashed = body[6:6 + hashed_len]
    at = 6 + hashed_len
    unhashed_len = struct.unpack(">H", bytes(body[at:at + 2]))[0]
    unhashed = body[at + 2:at + 2 + unhashed_len]
    at += 2 + unhashed_len
    left16 = bytes(body[at:at + 2])
    value, _ = read_mpi(body, at + 2)
    issuers = signature_issuers(hashed) + signature_issuers(unhashed)
    name, prefix = SIGNATURE_HASHES[hash_id]
    digest = hashlib.new(name, bytes(data))
    digest.update(bytes(body[:6 + hashed_len]))
    digest.update(b"\x04\xff" + struct.pack(">I", 6 + hashed_len))
    hashed_value = digest.digest()
    if hashed_value[:2] != left16:
        raise ValueError("the data does not match the signature (altered)")
    candidates = [k for k in keys if k.get("n") and (not issuers or any(
        k["fingerprint"].lower().endswith(i) for i in issuers))]
    if not candidates:
        raise ValueError("made by key %s, which is not trusted" % (issuers[0] if issuers else "?"))
    for key in candidates:
        size = (key["n"].bit_length() + 7) // 8
        info = binascii.unhexlify(prefix) + hashed_value
        expected = b"\x00\x01" + b"\xff" * (size - len(info) - 3) + b"\x00" + info
        got = binascii.unhexlify("%0*x" % (2 * size, pow(value, key["e"], key["n"])))
        if got == expected:
            return key["primary"]
    raise ValueError("bad signature (the data or the signature was altered)")


def signature_issuers(subpackets):
    """Issuer key ids / fingerprints (lower-case hex) named in signature subpackets."""
    found = []
    pos = 0
    while pos < len(subpackets):
        first = subpackets[pos]
        if first < 192:
            length, header = first, 1
        elif first < 255:
            length, header = ((first - 192) << 8) + subpackets[pos + 1] + 192, 2
        else:
            length = struct.unpack(">I", bytes(subpackets[pos + 1:pos + 5]))[0]
            header = 5
        kind = subpackets[pos + header] & 0x7F if length else 0
        content = bytes(subpackets[pos + header + 1:pos + header + length])
        if kind == 16:
            found.append(binascii.hexlify(content).decode("ascii"))
        elif kind == 33 and content:
            found.append(binascii.hexlify(content[1:]).decode("ascii"))
        pos += header + length
    return found


# =====================================================================================
# receipt and files
# =====================================================================================


def read_receipt(s):
    try:
        with open(RECEIPT, "rb") as handle:
            receipt = json.loads(handle.read().decode("utf-8"))
    except (IOError, OSError):
        return None
    except (ValueError, RuntimeError) as exc:
        s.log("unreadable receipt %s: %s" % (RECEIPT, exc))
        return None
    if not isinstance(receipt, dict) or not isinstance(receipt.get("transaction", {}), dict):
        s.log("unreadable receipt %s: not an airdock receipt" % RECEIPT)
        return None
    return receipt


def summarize_receipt(receipt):
    return {"time": receipt.get("time"), "bundle": receipt.get("bundle", {}).get("name"),
            "transaction": receipt.get("transaction", {}).get("id")}


def write_json_atomic(path, data):
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, 0o755)
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write((json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    os.rename(tmp, path)


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(1024 * 1024)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def walk_files(root, folder):
    found = []
    top = os.path.join(root, folder)
    for dirpath, _dirs, filenames in os.walk(top):
        for name in filenames:
            found.append(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    return sorted(found)


def tree_size(path):
    total = 0
    for dirpath, _dirs, filenames in os.walk(path):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def remove_tree(path):
    """Delete path; when it is a mount point, empty it and keep the empty folder."""
    if os.path.islink(path) or not os.path.isdir(path):
        os.remove(path)
        return
    for name in os.listdir(path):
        child = os.path.join(path, name)
        if os.path.isdir(child) and not os.path.islink(child):
            shutil.rmtree(child)
        else:
            os.remove(child)
    try:
        os.rmdir(path)
    except OSError as exc:
        if exc.errno not in (errno.EBUSY, errno.EPERM, errno.EACCES):
            raise


def human_size(size):
    size = float(size or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return ("%d %s" % (size, unit)) if unit == "B" else ("%.1f %s" % (size, unit))
        size /= 1024.0
    return "%.1f TiB" % size


def one_line(text):
    """Text on one line: control characters (a newline in a file's words) become spaces."""
    return " ".join(re.sub(r"[\x00-\x1f\x7f]", " ", text or "").split())


def printable(text):
    """Text from an untrusted file, for a message: anything but printable ASCII becomes ?."""
    return re.sub(r"[^ -~]", "?", text or "")


def short_digest(digest):
    return (digest or "").replace("sha256:", "")[:12]


def utc_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# =====================================================================================
# the installer lock: one run changing the host at a time
# =====================================================================================


class InstallerLock(object):
    """LOCK_FILE (/var/lib/airdock/lock), an flock(2) lock held for the whole run.

    install and uninstall hold it exclusively.  check (and --dry-run, which changes nothing
    either) holds it shared: checks may run side by side, but never beside an install or
    uninstall - a check during a transaction would read a half-changed rpmdb and report it
    as the host's state - and an install does not start under a running check.  status
    takes no lock: it only reads, and shows a half state as what it is.

    A run that cannot have the lock fails at once, changing nothing, with one line naming the
    other run's pid (written into the file); it never waits.  The kernel drops the lock when
    its process dies, even by SIGKILL.  The file exists only while held: the last holder
    removes it (and /var/lib/airdock when it made that folder and it is still empty), and a
    run that locked a file another run has just removed locks the new one instead.  Not root:
    no lock (the root check fails anyway).  A filesystem that cannot lock: a warning, and the
    run goes on unprotected.
    """

    def __init__(self, path=LOCK_FILE):
        self.path = path
        self.fd = None
        self.made_folder = False

    def acquire(self, s, exclusive):
        if os.geteuid() != 0:
            s.log("lock: not root, no lock taken")
            return False
        folder = os.path.dirname(self.path)
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        for _ in range(50):
            try:
                if not os.path.isdir(folder):
                    os.makedirs(folder, 0o755)
                    self.made_folder = True
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            except (IOError, OSError) as exc:
                if exc.errno in (errno.ENOENT, errno.EEXIST):  # a finishing run tidied up
                    continue
                return self.unprotected(s, exc)
            fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.fcntl(fd, fcntl.F_GETFD) | fcntl.FD_CLOEXEC)
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    os.close(fd)
                    return self.unprotected(s, exc)
                pid = self.holder(fd)
                os.close(fd)
                s.log("lock: %s is held by pid %s" % (self.path, pid or "?"))
                raise Failure("another airdock installer%s is running" % (
                    " (pid %d)" % pid if pid else ""), "wait for it to finish")
            if self.is_current(fd):
                self.fd = fd
                self.write_pid(exclusive)
                s.log("lock: %s held %s" % (self.path, "exclusively" if exclusive else "shared"))
                return True
            os.close(fd)  # locked a file a finishing run had just removed: lock the new one
        return self.unprotected(s, OSError("the lock file kept being replaced"))

    def unprotected(self, s, exc):
        s.say("warning: cannot lock %s (%s): nothing stops a second installer run meanwhile" % (
            self.path, getattr(exc, "strerror", None) or exc))
        return False

    def is_current(self, fd):
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        mine = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def write_pid(self, exclusive):
        try:
            if exclusive:
                os.ftruncate(self.fd, 0)
            elif os.fstat(self.fd).st_size:
                return  # another check's pid is there; either names a running installer
            os.lseek(self.fd, 0, 0)
            os.write(self.fd, ("%d\n" % os.getpid()).encode("ascii"))
        except OSError:
            pass

    def holder(self, fd):
        """The pid in the lock file (its holder may not have written it yet: wait a little)."""
        for _ in range(20):
            try:
                os.lseek(fd, 0, 0)
                match = re.match(r"^\s*([0-9]{1,9})\s", to_text(os.read(fd, 64)) or "")
            except OSError:
                match = None
            if match:
                return int(match.group(1))
            time.sleep(0.05)
        return None

    def release(self):
        if self.fd is None:
            return
        try:
            # Remove the file only when no other run holds it (a shared holder, or one that
            # got in between): an exclusive lock we can take now says so.
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if self.is_current(self.fd):
                os.unlink(self.path)
        except (IOError, OSError):
            pass
        os.close(self.fd)
        self.fd = None
        if self.made_folder:
            try:
                os.rmdir(os.path.dirname(self.path))  # only when still empty
            except OSError:
                pass


# =====================================================================================
# running commands, output and the log
# =====================================================================================


class Failure(Exception):
    """One line for the operator: what went wrong and what to do."""

    def __init__(self, message, fix=None, code=1):
        Exception.__init__(self, message)
        self.message, self.fix, self.code = message, fix, code


def to_text(data):
    if isinstance(data, bytes) and not isinstance(data, str):
        return data.decode("utf-8", "replace")
    return data


class Session(object):
    """Options, output (human or --json), the log, and running commands (--dry-run aware)."""

    def __init__(self, args):
        self.args = args
        self.dry_run = bool(getattr(args, "dry_run", False))
        self.json = bool(getattr(args, "json", False))
        self.result = {"command": args.command, "dry_run": self.dry_run, "ok": False,
                       "installer_version": VERSION}
        self.cleanup = []
        self.lock = None
        self.log_path = args.log
        self.log_error = None
        self._log = None
        self.env = dict(os.environ)
        self.env.update({"LC_ALL": "C", "LANG": "C"})
        self.log("=== airdock installer %s: %s (python %s, pid %d)" % (
            VERSION, " ".join(sys.argv), sys.version.split()[0], os.getpid()))

    # ---- output
    def say(self, text, err=False):
        self.log(text)
        if err:
            self._write(sys.stderr, text)
        elif not self.json:
            self._write(sys.stdout, text)

    def step(self, text):
        self.say("==> " + text)

    def show_check(self, check):
        self.log("check %s: %s: %s%s" % (check.name, check.status, check.message,
                                         " (fix: %s)" % check.fix if check.fix else ""))
        if self.json:
            return
        self._write(sys.stdout, "  [%-4s] %-12s %s" % (check.status, check.name, check.message))
        if check.fix and check.status in ("fail", "warn"):
            self._write(sys.stdout, "  %s %-12s fix: %s" % (" " * 6, "", check.fix))

    def _write(self, stream, text):
        if not isinstance(text, str):  # unicode on Python 2
            text = text.encode("utf-8", "replace")
        try:
            stream.write(text + "\n")
            stream.flush()
        except (IOError, UnicodeError):
            pass

    def failed(self, exc):
        where = self.log_path if self._log else "no log: %s" % (self.log_error or "not written")
        line = "airdock: %s%s (log: %s)" % (exc.message, "; " + exc.fix if exc.fix else "", where)
        self.log("FAILED: %s" % line)
        self.result["error"] = exc.message
        self.result["fix"] = exc.fix
        self._write(sys.stderr, line)

    def finish(self, code):
        if self.lock:
            self.lock.release()
        for path in self.cleanup:
            try:
                os.remove(path)
            except OSError:
                pass
        self.result["ok"] = code == 0
        self.result["exit_code"] = code
        self.log("=== exit %d" % code)
        if self.json:
            self._write(sys.stdout, json.dumps(self.result, indent=2, sort_keys=True))
        if self._log:
            self._log.close()

    # ---- the log
    def log(self, text):
        if self._log is None and self.log_error is None:
            try:
                folder = os.path.dirname(os.path.abspath(self.log_path))
                if not os.path.isdir(folder):
                    os.makedirs(folder, 0o755)
                self._log = open(self.log_path, "ab")
            except (IOError, OSError) as exc:
                self.log_error = "cannot write %s: %s" % (self.log_path, exc.strerror or exc)
        if self._log:
            data = time.strftime("%Y-%m-%d %H:%M:%S ", time.gmtime()) + text + "\n"
            if not isinstance(data, bytes):  # str on Python 3, unicode on Python 2
                data = data.encode("utf-8", "replace")
            self._log.write(data)
            self._log.flush()

    # ---- commands
    def run(self, cmd, change=False, check=True, quiet=False, stderr=True, fail=None, fix=None):
        """Run cmd (a list) -> (exit code, output).  change=True commands only print under
        --dry-run.  check=True turns a non-zero exit into Failure(fail or cmd, fix)."""
        shown = " ".join(shell_quote(c) for c in cmd)
        if change and self.dry_run:
            self.say("  would run: %s" % shown)
            return 0, ""
        if change and not quiet:
            self.say("  $ %s" % shown)
        devnull = open(os.devnull, "rb")
        try:
            proc = subprocess.Popen(cmd, stdin=devnull, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT if stderr else subprocess.PIPE,
                                    close_fds=True, env=self.env)
            out, err = proc.communicate()
            code = proc.returncode
        except OSError as exc:
            out, err, code = ("%s: %s" % (cmd[0], exc.strerror or exc)).encode("utf-8"), b"", 127
        finally:
            devnull.close()
        out, err = to_text(out) or "", to_text(err) or ""
        self.log("$ %s -> %d\n%s%s" % (shown, code, indent(out), indent(err)))
        if code != 0 and check:
            raise Failure(fail or ("`%s` failed (exit %d): %s" % (shown, code, last_error_line(
                out + err))), fix or "see the log")
        return code, out


def indent(text):
    if not text:
        return ""
    return "".join("    " + line + "\n" for line in text.rstrip("\n").splitlines())


if __name__ == "__main__":
    sys.exit(main())
