"""RPM identity and signature checks on real signed fixture RPMs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pysequoia
import pytest

from builder import signatures
from builder.errors import VerifyError
from builder.rpmverify import Keyring, read_identity, verify_rpm
from tests.rig import mirror as rig
from tests.rig import v3sign
from tests.rig.tools import run


@pytest.fixture(scope="module")
def keyring(fixture_mirror):
    return Keyring.load(fixture_mirror.keys)


def expected(pkg) -> tuple:
    return (pkg.name, int(pkg.epoch or 0), pkg.version, pkg.release, pkg.arch)


def test_good_rpm_verifies_and_names_its_key(fixture_mirror, keyring):
    pkg = fixture_mirror.pkg("docker-ce-stable", "x86_64", "docker-ce")
    ident = verify_rpm(
        fixture_mirror.rpm_path("docker-ce-stable", "x86_64", "docker-ce"),
        expected(pkg),
        keyring,
        "fixture",
    )
    assert (
        ident.epoch == 3
        and ident.signing_key == fixture_mirror.fingerprints["docker"][-16:].lower()
    )


def test_header_that_contradicts_metadata_is_refused(fixture_mirror, keyring):
    slirp = fixture_mirror.pkg("extras", "x86_64", "slirp4netns")
    fuse_file = fixture_mirror.rpm_path("extras", "x86_64", "fuse3-libs")
    with pytest.raises(VerifyError, match="the RPM header says fuse3-libs"):
        verify_rpm(fuse_file, expected(slirp), keyring, "fixture")


def test_flipped_payload_byte_breaks_the_signature(fixture_mirror, keyring, tmp_path):
    src = fixture_mirror.rpm_path("extras", "x86_64", "slirp4netns")
    bad = tmp_path / src.name
    shutil.copyfile(src, bad)
    data = bytearray(bad.read_bytes())
    data[-10] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(VerifyError, match="bad pgp signature"):
        verify_rpm(
            bad, expected(fixture_mirror.pkg("extras", "x86_64", "slirp4netns")), keyring, "fixture"
        )


def test_unsigned_rpm_is_refused(fixture_mirror, keyring, tmp_path):
    pkg = fixture_mirror.pkg("extras", "x86_64", "slirp4netns")
    unsigned = rig.build_rpm(pkg, tmp_path)
    with pytest.raises(VerifyError, match="is not signed"):
        verify_rpm(unsigned, expected(pkg), keyring, "fixture")


def test_key_not_trusted(fixture_mirror):
    only_docker = Keyring.load([fixture_mirror.key_file])
    pkg = fixture_mirror.pkg("extras", "x86_64", "slirp4netns")
    with pytest.raises(VerifyError, match="not trusted; pass its public key with --gpg-key"):
        verify_rpm(
            fixture_mirror.rpm_path("extras", "x86_64", "slirp4netns"),
            expected(pkg),
            only_docker,
            "fixture",
        )


@pytest.mark.parametrize("junk", [b"", b"\xed\xab\xee\xdb" + b"\0" * 200, b"not an rpm" * 50])
def test_malformed_rpm_is_a_clean_error(tmp_path, junk):
    path = tmp_path / "bad.rpm"
    path.write_bytes(junk)
    with pytest.raises(VerifyError, match="is not a readable RPM"):
        read_identity(path)


def test_vendor_keys_are_pinned():
    ring = Keyring.load()
    assert {k.fingerprint for k in ring.keys} == {
        "060A61C51B558A7F742B77AAC52FEB6B621E9F35",
        "6341AB2753D78A78A7C27BB124C6A8A7F4A80EB5",
    }


def test_key_that_signs_with_a_subkey(fixture_mirror, tmp_path):
    """Keys whose primary only certifies and a subkey signs (common for vendor keys)."""
    uid = "Subkey Signer <subkey@example.invalid>"
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--passphrase", ""]
    try:
        run([*gpg, "--quick-gen-key", uid, "rsa2048", "cert", "never"])
        fpr = run([*gpg, "--with-colons", "--list-keys", uid]).stdout.split("fpr:::::::::")[1][:40]
        run([*gpg, "--quick-add-key", fpr, "rsa2048", "sign", "never"])
        public = tmp_path / "subkey.asc"
        public.write_text(run([*gpg, "--armor", "--export", uid]).stdout)
        pkg = fixture_mirror.pkg("extras", "x86_64", "slirp4netns")
        rpm = rig.build_rpm(pkg, tmp_path / "out")
        rig.sign_rpms([rpm], home, uid)
    finally:
        run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
    ident = verify_rpm(rpm, expected(pkg), Keyring.load([public]), "fixture")
    assert ident.signer == fpr.upper()
    assert ident.signing_key != fpr[-16:].lower()  # the issuer is the subkey


# -- V3 signatures: what every CentOS 7 RPM carries --------------------------------------------
@pytest.fixture(scope="module")
def v3_key(tmp_path_factory):
    """A throwaway RSA key: armoured public key, unprotected binary secret key."""
    work = tmp_path_factory.mktemp("v3-key")
    home = work / "gnupg"
    home.mkdir(mode=0o700)
    gpg = [
        "gpg",
        "--homedir",
        str(home),
        "--batch",
        "--passphrase",
        "",
        "--pinentry-mode",
        "loopback",
    ]
    uid = "El7 Style Signer <el7@example.invalid>"
    try:
        run([*gpg, "--quick-gen-key", uid, "rsa2048", "sign", "never"])
        (work / "public.asc").write_text(run([*gpg, "--armor", "--export", uid]).stdout)
        secret = subprocess.run(
            [*gpg, "--export-secret-keys", uid], capture_output=True, check=True
        ).stdout
        (work / "secret.gpg").write_bytes(secret)
    finally:
        run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
    return work / "public.asc", work / "secret.gpg"


def test_v3_signature_verifies_and_rejects_tampering(v3_key):
    public, secret = v3_key
    key, key_id = v3sign.load_secret_key(secret)
    data = b"header bytes" * 300
    packet = v3sign.v3_signature(data, key, key_id)
    keys = signatures.rsa_public_keys(public)
    assert signatures.verify_v3(data, packet, keys) == key_id.hex()
    with pytest.raises(signatures.SignatureError):
        signatures.verify_v3(data + b"!", packet, keys)
    with pytest.raises(signatures.SignatureError, match="not over a binary document"):
        signatures.verify_v3(data, v3sign.v3_signature(data, key, key_id, sig_type=0x01), keys)
    with pytest.raises(signatures.SignatureError, match="lacks"):
        signatures.verify_v3(data, packet, {})
    # pysequoia alone refuses V3 outright (its policy), which is why the V3 path exists
    cert = pysequoia.Cert.from_file(str(public))
    with pytest.raises(Exception, match="v3"):
        pysequoia.verify(
            bytes=data, store=lambda _ids: [cert], signature=pysequoia.Sig.from_bytes(packet)
        )


def sign_v3(rpm: Path, secret: Path) -> None:
    """rpmsign with our V3 signer standing in for gpg: rpm writes the packets into the RPM."""
    home = rpm.parent / "rpmhome"
    home.mkdir(exist_ok=True)
    (home / ".rpmmacros").write_text("%_dbpath /var/lib/rpm\n")
    # rpm execs the first word with the rest as argv: argv[0] must name the venv python too
    command = (
        f"{sys.executable} {sys.executable} {Path(v3sign.__file__)} {secret} "
        "-sbo %{__signature_filename}"
    )
    run(
        [
            "rpmsign",
            "--addsign",
            "--rpmv3",
            "--define",
            f"__gpg_sign_cmd {command}",
            "--define",
            "_gpg_name unused",
            str(rpm),
        ],
        env={**os.environ, "HOME": str(home)},
        stdin=subprocess.DEVNULL,
    )


def rpmkeys_checksig(rpm: Path, public: Path, tmp: Path) -> subprocess.CompletedProcess:
    db = tmp / "rpmdb"
    db.mkdir(exist_ok=True)
    run(["rpmkeys", "--dbpath", str(db), "--import", str(public)])
    return run(["rpmkeys", "--dbpath", str(db), "--checksig", "-v", str(rpm)], check=False)


def test_el7_style_v3_signed_rpm(fixture_mirror, v3_key, tmp_path):
    """rpm itself writes and checks the V3 signatures; the builder agrees with it."""
    public, secret = v3_key
    pkg = fixture_mirror.pkg("extras", "x86_64", "slirp4netns")
    rpm = rig.build_rpm(pkg, tmp_path / "out")
    sign_v3(rpm, secret)
    oracle = rpmkeys_checksig(rpm, public, tmp_path)
    assert oracle.returncode == 0, oracle.stdout + oracle.stderr
    assert "V3 RSA/SHA256 Signature" in oracle.stdout
    ident = verify_rpm(rpm, expected(pkg), Keyring.load([public]), "fixture")
    assert ident.signer == pysequoia.Cert.from_file(str(public)).fingerprint.upper()

    data = bytearray(rpm.read_bytes())
    data[-10] ^= 0xFF
    rpm.write_bytes(bytes(data))
    assert rpmkeys_checksig(rpm, public, tmp_path).returncode != 0
    with pytest.raises(VerifyError, match="bad pgp signature") as err:
        verify_rpm(rpm, expected(pkg), Keyring.load([public]), "fixture")
    assert "\n" not in str(err.value)


def test_real_vendor_keys_yield_rsa_material_for_v3_checks():
    """CentOS 7's key is self-signed with SHA-1, which sequoia's policy refuses: its RPMs (V3
    signatures) can only be checked with the raw RSA key, which must be readable."""
    ring = Keyring.load()
    centos = next(k for k in ring.keys if k.path.name == "RPM-GPG-KEY-CentOS-7.asc")
    docker = next(k for k in ring.keys if k.path.name == "docker-ce-centos.asc")
    assert "24c6a8a7f4a80eb5" in centos.key_ids and "c52feb6b621e9f35" in docker.key_ids
    material = signatures.rsa_public_keys(centos.path)
    assert material["24c6a8a7f4a80eb5"].key_size >= 2048
    assert signatures.rsa_public_keys(docker.path)["c52feb6b621e9f35"].key_size == 4096
