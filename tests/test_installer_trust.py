"""The installer's trust: a publisher's signature checked against the host's trust root.

The verifier is the installer's own (stdlib, Python 2.7 and 3): its verdicts are held to real
``gpg --verify``'s on the same files. The trust scenarios run the unmodified installer on the
sandbox host (real dnf/rpm on an installroot) and compare ``rpm -qa`` (keys included), the
host's files and the trust folder before and after: a refusal changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pysequoia
import pytest

from tests.rig import mirror as rig
from tests.rig.fixtures_sandbox import INSTALLER_PYTHONS, installer_python
from tests.rig.publisher import make_publisher
from tests.rig.sandbox import INSTALLER, edit_manifest, rewrite_sha256sums
from tests.rig.tools import run

VERIFY = """
import sys
ns = {"__name__": "airdock_install"}
exec(compile(open(sys.argv[1]).read(), sys.argv[1], "exec"), ns)
data, sig, key = [open(p, "rb").read() for p in sys.argv[2:5]]
try:
    print("OK " + ns["verify_signature"](data, sig, ns["openpgp_keys"](key)))
except ValueError as exc:
    print("NO " + str(exc))
"""


def installer_verdict(python: str, data: Path, sig: Path, key: Path) -> str:
    proc = subprocess.run([python, "-c", VERIFY, str(INSTALLER), str(data), str(sig), str(key)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def gpg_verdict(data: Path, sig: Path, key: Path) -> bool:
    home = Path(tempfile.mkdtemp(prefix="gpgv-"))
    try:
        base = ["gpg", "--homedir", str(home), "--batch"]
        run([*base, "--import", str(key)])
        return run([*base, "--verify", str(sig), str(data)], check=False).returncode == 0
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def signatures(tmp_path_factory):
    """Files, keys and signatures: gpg's (primary key, SHA-256) and pysequoia's (signing
    subkey, SHA-512), an altered file, another publisher, an Ed25519 signature."""
    from builder.signing import load_signer

    tmp = tmp_path_factory.mktemp("sigs")
    ours = make_publisher(tmp / "ours")
    other = make_publisher(tmp / "other", "Other <other@example.invalid>")
    data = tmp / "SHA256SUMS"
    data.write_bytes(b"0" * 64 + b"  manifest.json\n")
    altered = tmp / "altered"
    altered.write_bytes(data.read_bytes().replace(b"manifest", b"manifesT"))
    by_sequoia = tmp / "sequoia.asc"
    by_sequoia.write_bytes(load_signer(str(ours.secret)).sign(data.read_bytes()))
    by_other = tmp / "other.asc"
    by_other.write_bytes(load_signer(str(other.secret)).sign(data.read_bytes()))
    tsk = pysequoia.Tsk.generate("Ed <ed@example.invalid>")
    by_ed = tmp / "ed.asc"
    by_ed.write_bytes(pysequoia.sign(tsk.signer(), data.read_bytes(),
                                     mode=pysequoia.SignatureMode.DETACHED))  # fmt: skip
    ed_key = tmp / "ed.pub.asc"
    ed_key.write_text(str(tsk.extract_certificate()))
    # gpg's own signature, with its primary key and SHA-256, as `--sign-key gpg:FPR` makes
    home = Path(tempfile.mkdtemp(prefix="gpgs-"))
    try:
        base = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback",
                "--passphrase", ""]  # fmt: skip
        run([*base, "--import", str(ours.secret)])
        by_gpg = tmp / "gpg.asc"
        run([*base, "--digest-algo", "SHA256", "--armor", "--detach-sign", "--output",
             str(by_gpg), str(data)])  # fmt: skip
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
        shutil.rmtree(home, ignore_errors=True)
    return {"data": data, "altered": altered, "ours": ours, "other": other, "gpg": by_gpg,
            "sequoia": by_sequoia, "by_other": by_other, "ed": by_ed, "ed_key": ed_key}  # fmt: skip


CASES = {
    # case: (data, signature, key) names in the fixture; the verdict is gpg's
    "gpg-primary-sha256": ("data", "gpg", "ours"),
    "sequoia-subkey-sha512": ("data", "sequoia", "ours"),
    "altered-data": ("altered", "sequoia", "ours"),
    "altered-data-gpg": ("altered", "gpg", "ours"),
    "another-publisher": ("data", "by_other", "ours"),
    "ed25519": ("data", "ed", "ed_key"),
}


@pytest.mark.parametrize("label", INSTALLER_PYTHONS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_installer_verifier_agrees_with_gpg(signatures, label, case):
    data_name, sig_name, key_name = CASES[case]
    data, sig = signatures[data_name], signatures[sig_name]
    key = signatures[key_name]
    key = key.public if hasattr(key, "public") else key
    verdict = installer_verdict(installer_python(label), data, sig, key)
    accepted = gpg_verdict(data, sig, key) and case != "ed25519"  # gpg 2.2 reads EdDSA; 2.0 not
    assert verdict.startswith("OK") == accepted, verdict
    if accepted:
        assert verdict == f"OK {signatures['ours'].fingerprint}"


# -- on the sandbox host -----------------------------------------------------------------------


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode not in (0, None), proc.stdout + proc.stderr
    lines = proc.stderr.strip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith("airdock: "), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


def unsign(bundle: Path) -> None:
    (bundle / "SHA256SUMS.asc").unlink()


@pytest.mark.slow
def test_trust_root_refuses_an_unsigned_bundle(sandbox, installer_bundles, bundle_copy):
    sb = sandbox()
    bundle = bundle_copy(installer_bundles["26.1.4"])
    unsign(bundle)
    before = sb.snapshot()
    proc = sb.installer(bundle, "install", "--yes")
    one_line_error(proc, "preflight failed: trust:", "the bundle is not signed",
                   "signed by a publisher it trusts")  # fmt: skip
    assert sb.snapshot() == before


@pytest.mark.slow
def test_trust_root_refuses_another_publisher(sandbox, installer_bundles, bundle_copy, tmp_path):
    from builder.signing import load_signer

    sb = sandbox()
    bundle = bundle_copy(installer_bundles["26.1.4"])
    mallory = make_publisher(tmp_path / "mallory", "Mallory <mallory@example.invalid>")
    load_signer(str(mallory.secret)).sign_file(bundle / "SHA256SUMS")
    before = sb.snapshot()
    proc = sb.installer(bundle, "install", "--yes", python=installer_python("2.7"))
    one_line_error(proc, "preflight failed: trust:", "SHA256SUMS.asc does not verify",
                   "which is not trusted")  # fmt: skip
    assert sb.snapshot() == before


@pytest.fixture
def substituted(installer_bundles, bundle_copy, tmp_path):
    """The attack of issue 9: keys/ replaced by an attacker's key, every RPM re-signed with
    it, an extra RPM added, manifest and SHA256SUMS recomputed, and SHA256SUMS signed by the
    attacker's own publisher key (keys/publisher.asc replaced too)."""
    from builder.signing import load_signer

    bundle = bundle_copy(installer_bundles["26.1.4"])
    uid = "Mallory <mallory@example.invalid>"
    extra = rig.Pkg("mallory-tools", "1.0", "1.el7", arch="x86_64")
    with rig.private_gnupghome() as home:
        key = rig.make_key(home, uid)
        rpms = sorted((bundle / "rpms").glob("*.rpm"))
        evil = rig.build_rpm(extra, tmp_path / "evil")
        rig.sign_rpms([*rpms, evil], home, uid)
        fpr = rig.key_fingerprint(home, uid)
    shutil.copyfile(evil, bundle / "rpms" / evil.name)
    for old in (bundle / "keys").glob("*.asc"):
        old.unlink()
    (bundle / "keys" / "mallory.asc").write_text(key)
    mallory_pub = make_publisher(tmp_path / "mallory-publisher", uid)
    shutil.copyfile(mallory_pub.public, bundle / "keys" / "publisher.asc")

    def edit(manifest: dict) -> None:
        manifest["keys"] = [{"file": "keys/mallory.asc", "fingerprint": fpr,
                             "key_ids": [fpr[-16:].lower()], "vendor": False}]  # fmt: skip
        manifest["publisher"] = {"file": "keys/publisher.asc",
                                 "fingerprint": mallory_pub.fingerprint}  # fmt: skip
        for entry in manifest["packages"]:
            path = bundle / entry["file"]
            entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
            entry["size"] = path.stat().st_size
            entry["signing_key"] = fpr[-16:].lower()
        manifest["packages"].append({
            "name": "mallory-tools", "epoch": 0, "version": "1.0", "release": "1.el7",
            "arch": "x86_64", "file": f"rpms/{evil.name}", "size": evil.stat().st_size,
            "sha256": hashlib.sha256(evil.read_bytes()).hexdigest(),
            "url": "http://mallory.invalid/", "repo": "docker-ce-stable",
            "signing_key": fpr[-16:].lower(), "requested": True,
        })  # fmt: skip

    edit_manifest(bundle, edit)  # rewrites SHA256SUMS (and re-signs it with the rig's key) ...
    load_signer(str(mallory_pub.secret)).sign_file(bundle / "SHA256SUMS")  # ... now Mallory's
    return bundle


@pytest.mark.slow
@pytest.mark.parametrize("trust", [True, False], ids=["trust-root", "no-trust-root"])
def test_substituted_bundle_is_refused_and_no_key_is_imported(sandbox, substituted, trust):
    sb = sandbox(trust=trust)
    before = sb.snapshot()
    proc = sb.installer(substituted, "install", "--yes")
    if trust:
        one_line_error(proc, "preflight failed: trust:", "SHA256SUMS.asc does not verify")
    else:
        one_line_error(proc, "preflight failed: signatures:", "keys/mallory.asc",
                       "is not a vendor key", "--trust-key")  # fmt: skip
    assert sb.snapshot() == before  # rpm -qa with gpg-pubkey entries, files, history


@pytest.mark.slow
def test_without_a_trust_root_the_operator_is_shown_what_to_compare(
    sandbox, installer_bundles, publisher
):
    sb = sandbox(trust=False)
    bundle = installer_bundles["26.1.4"]
    proc = sb.installer(bundle, "check", "--json")
    result = json.loads(proc.stdout)
    checks = {c["name"]: c for c in result["checks"]}
    assert result["trust"] == "unverified"
    assert checks["trust"]["status"] == "warn"
    assert publisher.fingerprint in checks["trust"]["message"]
    assert f"--trust-fingerprint {publisher.fingerprint}" in checks["trust"]["fix"]
    # the fixture RPM keys are not vendor keys: nothing vouches for them yet
    assert checks["signatures"]["status"] == "fail" and proc.returncode == 1
    trusted = sb.installer(bundle, "check", "--json", "--trust-fingerprint", publisher.fingerprint)
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert json.loads(trusted.stdout)["trust"] == f"signed-by {publisher.fingerprint}"


@pytest.mark.slow
def test_unsigned_bundle_without_a_trust_root_shows_the_sha256sums_digest(
    sandbox, installer_bundles, bundle_copy
):
    sb = sandbox(trust=False)
    bundle = bundle_copy(installer_bundles["26.1.4"])
    unsign(bundle)
    proc = sb.installer(bundle, "check", "--json")
    result = json.loads(proc.stdout)
    trust = next(c for c in result["checks"] if c["name"] == "trust")
    digest = hashlib.sha256((bundle / "SHA256SUMS").read_bytes()).hexdigest()
    assert result["trust"] == "unsigned" and trust["status"] == "warn"
    assert digest in trust["message"]


@pytest.mark.slow
def test_install_with_trust_key_stores_it_and_later_bundles_are_checked(
    sandbox, installer_bundles, bundle_copy, publisher
):
    sb = sandbox(trust=False)
    proc = sb.installer(installer_bundles["25.0.5"], "install", "--yes", "--skip-images",
                        "--trust-key", str(publisher.public))  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sb.trusted_keys == [f"{publisher.fingerprint}.asc"]
    receipt = json.loads(sb.receipt.read_text())
    assert receipt["trust"] == f"signed-by {publisher.fingerprint}"
    assert receipt["transaction"]["id"]
    # Docker's fixture key was imported (it signed what was installed); CentOS's was present
    assert [k.startswith("gpg-pubkey-") for k in receipt["imported_keys"]] == [True]
    unsigned = bundle_copy(installer_bundles["26.1.4"])
    unsign(unsigned)
    before = sb.snapshot()
    proc = sb.installer(unsigned, "install", "--yes")
    one_line_error(proc, "preflight failed: trust:", "the bundle is not signed")
    assert sb.snapshot() == before
    # uninstall removes the key it imported, and only that one
    keys_before = {n for n in sb.rpm_qa() if n.startswith("gpg-pubkey-")}
    proc = sb.installer(installer_bundles["25.0.5"], "uninstall", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    keys_after = {n for n in sb.rpm_qa() if n.startswith("gpg-pubkey-")}
    gone = keys_before - keys_after
    short_id = receipt["imported_keys"][0].rsplit("-", 1)[-1]  # gpg-pubkey-<8 hex>
    assert len(gone) == 1 and short_id in next(iter(gone))
    assert keys_after  # the CentOS key the host had is still there


@pytest.mark.slow
def test_tampering_after_signing_is_refused_by_the_signature(
    sandbox, installer_bundles, bundle_copy
):
    """SHA256SUMS rewritten to match an altered file, but not re-signed: the trust check
    refuses it before any RPM is looked at."""
    sb = sandbox()
    bundle = bundle_copy(installer_bundles["26.1.4"])
    (bundle / "README.txt").write_text("run me as root\n")
    rewrite_sha256sums(bundle, sign=False)
    before = sb.snapshot()
    proc = sb.installer(bundle, "check")
    one_line_error(proc, "preflight failed: trust:", "does not verify")
    assert sb.snapshot() == before
