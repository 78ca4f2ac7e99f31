"""Signed bundles and `airdock verify`: what an operator checks before running anything.

Signatures are made by airdock (pysequoia, or the local gpg-agent) and checked by real
``gpg --verify`` in a throw-away GNUPGHOME, by pysequoia and by ``airdock verify``; the keys
are real RSA keys made by gpg. (CentOS 7's gpg is 2.0.22; Debian's 2.2 stands in for it here,
and the packets are checked to be what 2.0 reads: v4, RSA, SHA-256/512.)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pysequoia
import pytest

from builder.errors import UsageError
from builder.signing import check_el7_compatible, load_signer, verify_detached
from tests.rig.tools import need, run
from tests.test_build import airdock, build


def gpg(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback",
                "--passphrase", "", *args], check=check, errors="replace")  # fmt: skip


def make_key(tmp: Path, uid: str, algo: str = "rsa3072") -> dict:
    """A fresh key in its own GNUPGHOME: public and secret key files, fingerprint."""
    need("gpg")
    home = tmp / f"gnupg-{algo}"
    home.mkdir(mode=0o700, parents=True)
    gpg(home, "--quick-gen-key", uid, algo, "sign", "never")
    fpr = gpg(home, "--with-colons", "--list-keys", uid).stdout.split("fpr:::::::::")[1][:40]
    public, secret = tmp / f"{algo}.pub.asc", tmp / f"{algo}.sec.asc"
    public.write_text(gpg(home, "--armor", "--export", fpr).stdout)
    secret.write_text(gpg(home, "--armor", "--export-secret-keys", fpr).stdout)
    return {"home": home, "fpr": fpr, "public": public, "secret": secret}


@pytest.fixture(scope="module")
def publisher(tmp_path_factory):
    key = make_key(tmp_path_factory.mktemp("publisher"), "Publisher <pub@example.invalid>")
    yield key
    run(["gpgconf", "--homedir", str(key["home"]), "--kill", "all"], check=False)


@pytest.fixture(scope="module")
def stranger(tmp_path_factory):
    key = make_key(tmp_path_factory.mktemp("stranger"), "Stranger <x@example.invalid>")
    yield key
    run(["gpgconf", "--homedir", str(key["home"]), "--kill", "all"], check=False)


def gpg_verify(public: Path, signature: Path, data: Path, tmp: Path) -> subprocess.CompletedProcess:
    """What an operator runs: a throw-away keyring holding only the publisher's key."""
    home = Path(tempfile.mkdtemp(prefix="gpgv-"))  # short: gpg-agent's socket path is bounded
    try:
        gpg(home, "--import", str(public))
        return gpg(home, "--status-fd", "1", "--verify", str(signature), str(data), check=False)
    finally:
        run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
        shutil.rmtree(home, ignore_errors=True)


# -- pure: the signer and the packet policy ----------------------------------------------------
def test_signer_makes_v4_rsa_signatures_that_verify(publisher):
    signer = load_signer(str(publisher["secret"]))
    assert signer.fingerprint == publisher["fpr"]
    signature = signer.sign(b"SHA256SUMS body")
    sig = pysequoia.Sig.from_bytes(signature)
    assert sig.version == 4 and "RSA" in str(sig.key_algorithm)
    assert str(sig.hash_algorithm).endswith(("SHA256", "SHA512"))
    cert = pysequoia.Cert.from_bytes(signer.public_key)
    assert verify_detached(b"SHA256SUMS body", signature, [cert]) == publisher["fpr"]
    with pytest.raises(ValueError):
        verify_detached(b"SHA256SUMS body!", signature, [cert])


def test_a_key_centos_7_cannot_check_is_refused(tmp_path):
    key = make_key(tmp_path, "Modern <ed@example.invalid>", "ed25519")
    with pytest.raises(UsageError, match="CentOS 7 \\(GnuPG 2.0\\) cannot check; use an RSA key"):
        load_signer(str(key["secret"]))
    run(["gpgconf", "--homedir", str(key["home"]), "--kill", "all"], check=False)


def test_not_a_secret_key_and_missing_files_are_usage_errors(publisher, tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        load_signer(str(tmp_path / "nope.asc"))
    with pytest.raises(UsageError, match="is not an OpenPGP secret key|cannot sign"):
        load_signer(str(publisher["public"]))
    with pytest.raises(UsageError, match="full 40-hex fingerprint"):
        load_signer("gpg:ABCD")


def test_packet_policy_refuses_what_gnupg_2_0_cannot_read(tmp_path):
    ed = pysequoia.Tsk.generate("Ed <ed@example.invalid>")
    signature = pysequoia.sign(ed.signer(), b"x", mode=pysequoia.SignatureMode.DETACHED)
    with pytest.raises(UsageError, match="cannot check"):
        check_el7_compatible(signature, "test")


# -- signed builds -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def signed_bundle(tmp_path_factory, fixture_mirror, mirror_server, publisher):
    from tests.rig.fixtures_mirror import builder_mirror_args

    tmp = tmp_path_factory.mktemp("signed")
    result = build(tmp, builder_mirror_args(fixture_mirror, mirror_server.url),
                   "--sign-key", publisher["secret"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    return {"tmp": tmp, "folder": Path(summary["bundle"]), "tarball": Path(summary["tarball"])}


def test_signed_bundle_verifies_with_gpg_and_names_its_publisher(
    signed_bundle, publisher, tmp_path
):
    folder, tarball = signed_bundle["folder"], signed_bundle["tarball"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["publisher"] == {"file": "keys/publisher.asc", "fingerprint": publisher["fpr"]}
    assert "keys/publisher.asc" in (folder / "SHA256SUMS").read_text()
    assert "SHA256SUMS.asc" not in (folder / "SHA256SUMS").read_text()
    for signature, data in (
        (folder / "SHA256SUMS.asc", folder / "SHA256SUMS"),
        (Path(f"{tarball}.sha256.asc"), Path(f"{tarball}.sha256")),
    ):
        proc = gpg_verify(publisher["public"], signature, data, tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"VALIDSIG {publisher['fpr']}" in proc.stdout or "VALIDSIG" in proc.stdout
        assert "GOODSIG" in proc.stdout
    # the public key shipped in the bundle is the publisher's
    shipped = pysequoia.Cert.from_file(str(folder / "keys" / "publisher.asc"))
    assert shipped.fingerprint.upper() == publisher["fpr"]


def test_gpg_agent_key_signs_with_sha256(tmp_path, fixture_mirror, mirror, mirror_args, publisher):
    env = {**os.environ, "GNUPGHOME": str(publisher["home"])}
    result = airdock("build", *mirror_args, "--no-images", "--output", tmp_path / "out",
                     "--cache-dir", tmp_path / "cache", "--json", "--sign-key",
                     f"gpg:{publisher['fpr']}", env=env)  # fmt: skip
    assert result.exit_code == 0, result.output
    folder = Path(json.loads(result.stdout)["bundle"])
    sig = pysequoia.Sig.from_bytes((folder / "SHA256SUMS.asc").read_bytes())
    assert str(sig.hash_algorithm).endswith("SHA256") and sig.version == 4
    proc = gpg_verify(publisher["public"], folder / "SHA256SUMS.asc", folder / "SHA256SUMS",
                      tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


# -- airdock verify ----------------------------------------------------------------------------
def verify(*args) -> tuple[int, dict]:
    result = airdock("verify", *args, "--json")
    return result.exit_code, json.loads(result.stdout)


def statuses(report: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


def test_verify_folder_and_tarball_with_the_publisher_key(signed_bundle, publisher):
    for path in (signed_bundle["folder"], signed_bundle["tarball"]):
        code, report = verify(path, "--key", publisher["public"])
        assert code == 0 and report["ok"], report
        assert report["trust"] == f"signed-by {publisher['fpr']}"
        assert {"SHA256SUMS", "signature", "rpms"} <= {
            name for name, status in statuses(report).items() if status == "pass"
        }


def test_verify_without_a_key_refuses_non_vendor_rpm_keys(signed_bundle):
    """The fixture RPMs are signed by test keys: without the publisher's key nothing vouches
    for them, so the bundle does not pass (its own publisher.asc is not a trust root)."""
    code, report = verify(signed_bundle["folder"])
    assert code == 1 and not report["ok"]
    assert report["trust"].endswith("(untrusted)")
    assert statuses(report)["keys"] == "fail"


def test_verify_refuses_another_publisher(signed_bundle, stranger):
    code, report = verify(signed_bundle["folder"], "--key", stranger["public"])
    assert code == 1 and statuses(report)["signature"] == "fail"


@pytest.mark.parametrize("damage", ["flip-rpm", "reseal-without-signing", "extra-file"])
def test_verify_finds_altered_bundles(signed_bundle, publisher, tmp_path, damage):
    from builder.bundle import write_sha256sums

    copy = tmp_path / signed_bundle["folder"].name
    shutil.copytree(signed_bundle["folder"], copy)
    rpm = next((copy / "rpms").glob("docker-ce-2*.rpm"))
    if damage == "extra-file":
        (copy / "rpms" / "evil-1.0-1.el7.x86_64.rpm").write_bytes(rpm.read_bytes())
    else:
        data = bytearray(rpm.read_bytes())
        data[-100] ^= 0xFF
        rpm.write_bytes(bytes(data))
    if damage == "reseal-without-signing":
        write_sha256sums(copy)
    code, report = verify(copy, "--key", publisher["public"])
    assert code == 1
    failed = {n for n, s in statuses(report).items() if s == "fail"}
    if damage == "reseal-without-signing":  # then nothing vouches for the fixture keys either
        assert failed == {"signature", "keys"}
    else:
        assert failed == {"SHA256SUMS"}


def test_verify_split_parts_and_join_file(tmp_path, mirror, mirror_args, publisher):
    result = build(tmp_path, mirror_args, "--split-size", "64K", "--sign-key", publisher["secret"])
    assert result.exit_code == 0, result.output
    parts = [Path(p) for p in json.loads(result.stdout)["parts"]]
    assert len(parts) > 1
    join = parts[0].parent / (parts[0].name.split(".tar")[0] + ".JOIN.txt")
    for path in (parts[1], join):
        code, report = verify(path, "--key", publisher["public"])
        assert code == 0, report
        assert statuses(report)["parts"] == "pass" and statuses(report)["tarball"] == "pass"
    damaged = parts[0].read_bytes()
    parts[0].write_bytes(damaged[:-1] + bytes([damaged[-1] ^ 1]))
    code, report = verify(join, "--key", publisher["public"])
    assert code == 1 and report["checks"][0]["status"] == "fail"


def test_signed_release_signs_releases_json(tmp_path, fixture_mirror, mirror, publisher):
    from tests.rig.fixtures_mirror import builder_mirror_args

    args = builder_mirror_args(fixture_mirror, mirror.url)
    result = airdock("release", *args, "--no-images", "--output", tmp_path / "rel", "--cache-dir",
                     tmp_path / "cache", "--sign-key", publisher["secret"])  # fmt: skip
    assert result.exit_code == 0, result.output
    proc = gpg_verify(publisher["public"], tmp_path / "rel" / "RELEASES.json.asc",
                      tmp_path / "rel" / "RELEASES.json", tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert list((tmp_path / "rel").glob("*.tar.sha256.asc"))


@pytest.mark.parametrize(
    "variant", ["stripped-1002+flipped", "swapped-signature-header", "payload-flipped"]
)
def test_verify_refuses_a_doctored_rpm_even_in_a_publisher_signed_bundle(
    signed_bundle, publisher, tmp_path, variant
):
    """The RPM check stands on its own: even with SHA256SUMS re-sealed and re-signed by the
    publisher's key, a half-signed, swapped or altered package is refused."""
    from builder.bundle import write_sha256sums
    from builder.signing import load_signer
    from tests.test_rpmverify import make_variant

    copy = tmp_path / signed_bundle["folder"].name
    shutil.copytree(signed_bundle["folder"], copy)
    rpms = sorted((copy / "rpms").glob("*.rpm"))
    target = next(p for p in rpms if p.name.startswith("docker-ce-2"))
    other = next(p for p in rpms if p.name.startswith("docker-ce-cli"))
    shutil.copyfile(make_variant(target, other, variant, tmp_path / "v"), target)
    manifest = json.loads((copy / "manifest.json").read_text())
    for entry in manifest["packages"]:
        if entry["file"] == f"rpms/{target.name}":
            entry["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
            entry["size"] = target.stat().st_size
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    write_sha256sums(copy)
    load_signer(str(publisher["secret"])).sign_file(copy / "SHA256SUMS")
    code, report = verify(copy, "--key", publisher["public"])
    assert code == 1
    assert {n for n, s in statuses(report).items() if s == "fail"} == {"rpms"}
    message = next(c["message"] for c in report["checks"] if c["name"] == "rpms")
    assert target.name in message and "\n" not in message
