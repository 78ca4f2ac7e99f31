"""RPM identity and signature checks on real signed fixture RPMs."""

from __future__ import annotations

import hashlib
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


@pytest.mark.parametrize(
    "field, value",
    [(1, 2), (2, "25.0.5"), (3, "2.el7"), (4, "aarch64")],
    ids=["epoch", "version", "release", "arch"],
)
def test_header_with_the_right_name_but_another_identity_is_refused(
    fixture_mirror, keyring, field, value
):
    """Same name, signed by a trusted key, but not the NEVRA the metadata promised: the
    identity check compares every field, and the one line names both identities."""
    pkg = fixture_mirror.pkg("docker-ce-stable", "x86_64", "docker-ce")
    claimed = list(expected(pkg))
    claimed[field] = value
    with pytest.raises(VerifyError) as err:
        verify_rpm(
            fixture_mirror.rpm_path("docker-ce-stable", "x86_64", "docker-ce"),
            tuple(claimed),
            keyring,
            "fixture",
        )
    message = str(err.value)
    name, epoch, version, release, arch = claimed
    assert f"the RPM header says {pkg.name}-3:{pkg.version}-{pkg.release}.x86_64" in message
    assert f"the repository metadata says {name}-{epoch}:{version}-{release}.{arch}" in message
    assert "\n" not in message


def test_flipped_payload_byte_breaks_the_signature(fixture_mirror, keyring, tmp_path):
    src = fixture_mirror.rpm_path("extras", "x86_64", "slirp4netns")
    bad = tmp_path / src.name
    shutil.copyfile(src, bad)
    data = bytearray(bad.read_bytes())
    data[-10] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(VerifyError, match=r"bad header\+payload signature \(tag 1002\)"):
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


def test_v4_signature_verifies_and_rejects_tampering(tmp_path):
    """The signature promise on bytes alone (no RPM, no mirror): first in the suite."""
    key = pysequoia.Tsk.generate("V4 Signer <v4@example.invalid>")
    cert = key.extract_certificate()
    cert_file = tmp_path / "v4.pgp"
    cert_file.write_bytes(bytes(cert))
    data = b"header and payload" * 100
    packet = pysequoia.sign(key.signer(), data, mode=pysequoia.SignatureMode.DETACHED, armor=False)
    signatures.verify(data, packet, cert, cert_file)
    for altered in (data[:-1] + b"!", data + b"\0", b""):
        with pytest.raises(signatures.SignatureError):
            signatures.verify(altered, packet, cert, cert_file)
    other = pysequoia.Tsk.generate("Other <other@example.invalid>").extract_certificate()
    with pytest.raises(signatures.SignatureError):
        signatures.verify(data, packet, other, cert_file)


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
    with pytest.raises(VerifyError, match=r"bad header\+payload signature \(tag 1002\)") as err:
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


# -- a mirror whose metadata lies about what a file is ----------------------------------------
SUBSTITUTIONS = {
    # case: (fixture, arch claimed, name, version claimed, arch of the file, version of the file)
    "older-version": ("fixture_mirror", "x86_64", "docker-ce", None, "x86_64", "25.0.5"),
    "other-arch": ("fixture_mirror_multiarch", "x86_64", "containerd.io", None, "aarch64", None),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SUBSTITUTIONS))
def test_substituted_file_is_refused_before_the_bundle_is_written(request, tmp_path, case):
    """The metadata's checksum and size are the substitute's own (the mirror re-sealed its
    repodata around the lie), so only the header identity can tell: one line naming both
    identities, exit 1, nothing published."""
    from tests.rig.fixtures_mirror import builder_mirror_args
    from tests.rig.httpserver import MirrorServer
    from tests.rig.repoedit import edit_package, hardlinked_copy, replace_file
    from tests.rig.repoedit import set_checksum_and_size as reseal
    from tests.test_build import build

    fixture_name, arch, name, version, file_arch, file_version = SUBSTITUTIONS[case]
    fixture = request.getfixturevalue(fixture_name)
    www = hardlinked_copy(fixture.root, tmp_path / "www")
    repo = www / rig.repo_relpath("docker-ce-stable", arch)
    claimed = fixture.pkg("docker-ce-stable", arch, name, version)
    substitute = fixture.rpm_path("docker-ce-stable", file_arch, name, file_version)
    got = fixture.pkg("docker-ce-stable", file_arch, name, file_version)
    replace_file(repo / "Packages" / claimed.filename, substitute)
    digest = hashlib.sha256(substitute.read_bytes()).hexdigest()
    edit_package(repo, claimed.filename, lambda b: reseal(b, digest, substitute.stat().st_size))
    with MirrorServer(www) as server:
        result = build(tmp_path, builder_mirror_args(fixture, server.url))
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()  # --json: nothing on stdout after an error
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert f"the RPM header says {got.name}-{got.epoch or 0}:{got.version}-{got.release}." \
        f"{file_arch}" in lines[0]  # fmt: skip
    assert f"the repository metadata says {claimed.name}-{claimed.epoch or 0}:" \
        f"{claimed.version}-{claimed.release}.{arch}" in lines[0]  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "bundles").iterdir()) == []
