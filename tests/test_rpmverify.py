"""RPM identity, digest and signature checks, with rpm itself as the oracle.

Real el7 packages (``tests/data/real-el7``: CentOS V3-signed, Docker V4-signed, one EPEL-signed
that the vendor keys cannot check) and the fixture mirror's rpmbuild/rpmsign packages, each also
rewritten by the test into variants (signature tags stripped, another package's signature
header, a payload byte flipped): every verdict must be rpm's. The oracle is Debian's rpm 4.18,
``rpmkeys -Kv`` against a throw-away rpmdb holding only the trusted keys, with
``%_pkgverify_level all`` — rpm's own "digests and signatures OK" — which differs from the
default level (``digest``) only on an unsigned package (asserted too).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pysequoia
import pytest

from builder import rpmheader, signatures
from builder.errors import VerifyError
from builder.rpmverify import (
    CHUNK,
    KEYS_DIR,
    VENDOR_KEYS,
    Keyring,
    read_identity,
    verify_rpm,
    verify_rpm_signatures,
)
from tests.rig import mirror as rig
from tests.rig import rpmsig, v3sign
from tests.rig.rpmsig import SplitRpm
from tests.rig.tools import need, run

REAL = Path(__file__).parent / "data" / "real-el7"
REAL_RPMS = sorted(p.name for p in REAL.glob("*.rpm"))
UNTRUSTED = {"pigz-2.3.4-1.el7.x86_64.rpm"}  # EPEL's key: NOKEY with the vendor keys
CENTOS_V3 = "socat-1.7.3.2-2.el7.x86_64.rpm"
DOCKER_V4 = "docker-ce-selinux-17.03.3.ce-1.el7.noarch.rpm"

# name -> how the variant is made from the package and another one (for its signature header)
VARIANTS: dict[str, Callable[[SplitRpm, SplitRpm], SplitRpm]] = {
    "original": lambda rpm, other: rpm,
    "stripped-268": lambda rpm, other: rpm.without(rpmsig.RSAHEADER, rpmsig.DSAHEADER),
    "stripped-1002": lambda rpm, other: rpm.without(rpmsig.PGP, rpmsig.GPG),
    "stripped-1002+flipped": lambda rpm, other: rpm.without(
        rpmsig.PGP, rpmsig.GPG
    ).with_payload_byte_flipped(),
    "stripped-1002+flipped+md5-resealed": lambda rpm, other: (
        rpm.without(rpmsig.PGP, rpmsig.GPG).with_payload_byte_flipped().with_md5_resealed()
    ),
    "stripped-digests": lambda rpm, other: rpm.without(*rpmsig.DIGESTS),
    "unsigned": lambda rpm, other: rpm.without(*rpmsig.SIGNATURES),
    "payload-flipped": lambda rpm, other: rpm.with_payload_byte_flipped(),
    "payload-truncated": lambda rpm, other: rpm.with_payload_truncated(),
    "swapped-signature-header": lambda rpm, other: rpm.with_signature_header_of(other),
}
# What rpm (and so airdock) accepts of a package signed by a trusted key. el7 packages: what
# still has its header+payload signature. rpm 4.18's packages carry a payload digest (5092)
# in their signed header, so their header signature alone also covers the payload.
ACCEPTED_EL7 = {"original", "stripped-268"}
ACCEPTED_WITH_PAYLOAD_DIGEST = {"original", "stripped-268", "stripped-1002"}


def make_variant(src: Path, other: Path, variant: str, tmp: Path) -> Path:
    """``src`` rewritten as ``variant``, under its own file name in a folder of its own."""
    folder = tmp / variant
    folder.mkdir(parents=True, exist_ok=True)
    made = VARIANTS[variant](SplitRpm.read(src), SplitRpm.read(other))
    return made.write(folder / src.name)


def rpmdb_with(keys: Iterable[Path], db: Path) -> Path:
    """A throw-away rpmdb that trusts exactly ``keys``."""
    need("rpmkeys")
    db.mkdir(parents=True, exist_ok=True)
    for key in keys:
        run(["rpmkeys", "--dbpath", str(db), "--import", str(key)])
    return db


@dataclass(frozen=True)
class Verdicts:
    rpm: bool  # rpmkeys -Kv, %_pkgverify_level all: exit code 0
    rpm_default: bool  # rpmkeys -Kv as it comes (%_pkgverify_level digest)
    rpm_output: str
    airdock: bool
    airdock_says: str


def verdicts(path: Path, db: Path, keyring: Keyring) -> Verdicts:
    def rpmkeys(*define: str) -> subprocess.CompletedProcess:
        return run(["rpmkeys", "--dbpath", str(db), *define, "-Kv", str(path)], check=False)

    strict = rpmkeys("--define", "_pkgverify_level all")
    default = rpmkeys()
    try:
        verify_rpm_signatures(path, keyring)
        ours, says = True, "accepted"
    except VerifyError as exc:
        ours, says = False, str(exc)
    output = strict.stdout + strict.stderr
    return Verdicts(strict.returncode == 0, default.returncode == 0, output, ours, says)


@pytest.fixture(scope="module")
def vendor_rpmdb(tmp_path_factory) -> Path:
    return rpmdb_with([KEYS_DIR / name for name in VENDOR_KEYS], tmp_path_factory.mktemp("rpmdb"))


@pytest.fixture(scope="module")
def vendor_keyring() -> Keyring:
    return Keyring.load()


@pytest.fixture(scope="module")
def keyring(fixture_mirror):
    return Keyring.load(fixture_mirror.keys)


def expected(pkg) -> tuple:
    return (pkg.name, int(pkg.epoch or 0), pkg.version, pkg.release, pkg.arch)


# -- real el7 RPMs and their variants, against rpm itself (pure: no rig fixture) --------------
def test_real_rpms_are_the_ones_in_their_provenance():
    block = (REAL / "PROVENANCE.md").read_text().split("```")[1]
    listed = dict(reversed(line.split()) for line in block.strip().splitlines())
    assert sorted(listed) == REAL_RPMS
    for name, digest in listed.items():
        assert hashlib.sha256((REAL / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("name", REAL_RPMS)
def test_rig_rewrites_a_signature_header_byte_for_byte_as_rpmsign_wrote_it(name):
    """The variants change only what a test asks for: read and written back, a real file
    is unchanged, so rpm judges the stripped tags and nothing the rewrite did."""
    rpm = SplitRpm.read(REAL / name)
    assert rpm.to_bytes() == (REAL / name).read_bytes()
    assert rpm.tags() == [268, 269, 1000, 1002, 1004, 1007]  # no payload digest in el7 headers


@pytest.mark.parametrize("name", REAL_RPMS)
def test_identity_is_what_rpm_reads_from_the_header(name, tmp_path):
    need("rpm")
    query = "%{NAME} %{EPOCHNUM} %{VERSION} %{RELEASE} %{ARCH} %{SIGPGP:pgpsig}"
    out = run(
        ["rpm", "--dbpath", str(tmp_path), "-qp", "--nosignature", "--qf", query, REAL / name]
    ).stdout.split(maxsplit=5)
    ident = read_identity(REAL / name)
    assert (ident.name, str(ident.epoch), ident.version, ident.release, ident.arch) == tuple(
        out[:5]
    )
    assert out[5].endswith(f"Key ID {ident.signing_key}")


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("name", REAL_RPMS)
def test_real_rpm_verdict_is_rpms(name, variant, vendor_rpmdb, vendor_keyring, tmp_path):
    """Every real package and every variant: airdock accepts exactly what rpm -K calls
    "digests signatures OK" with the two vendor keys; so the half-signed are refused."""
    other = REAL_RPMS[(REAL_RPMS.index(name) + 1) % len(REAL_RPMS)]
    path = make_variant(REAL / name, REAL / other, variant, tmp_path)
    v = verdicts(path, vendor_rpmdb, vendor_keyring)
    assert "error:" not in v.rpm_output  # rpm read the rewritten file: only its checks differ
    assert v.airdock == v.rpm, f"rpm:\n{v.rpm_output}airdock: {v.airdock_says}"
    assert v.rpm == (variant in ACCEPTED_EL7 and name not in UNTRUSTED), v.rpm_output
    # rpm's default level passes an unsigned package on its digests; nothing else differs
    assert v.rpm_default == (v.rpm or variant == "unsigned"), v.rpm_output


REFUSALS = {  # variant of a package by a trusted key -> what its one line says
    "stripped-1002": "has only a header signature and no payload digest: nothing signed covers "
    "its payload; refusing it — use another mirror",
    "stripped-1002+flipped": "has only a header signature and no payload digest",
    "stripped-1002+flipped+md5-resealed": "has only a header signature and no payload digest",
    "stripped-digests": "carries no digest of its header or payload, which rpm requires",
    "unsigned": "is not signed; refusing an unsigned package",
    "payload-flipped": ": bad header+payload signature (tag 1002) by key ",
    "payload-truncated": ": bad header+payload signature (tag 1002) by key ",
    "swapped-signature-header": ": bad header signature (tag 268) by key ",
}


@pytest.mark.parametrize("variant", list(REFUSALS))
@pytest.mark.parametrize("name", [CENTOS_V3, DOCKER_V4])
def test_refusal_is_one_line_naming_the_file_and_what_is_missing(
    name, variant, vendor_keyring, tmp_path
):
    other = REAL_RPMS[(REAL_RPMS.index(name) + 1) % len(REAL_RPMS)]
    path = make_variant(REAL / name, REAL / other, variant, tmp_path)
    ident = read_identity(REAL / name)
    nevra = (ident.name, ident.epoch, ident.version, ident.release, ident.arch)
    with pytest.raises(VerifyError) as err:
        verify_rpm(path, nevra, vendor_keyring, "https://mirror.example/el7")
    line = str(err.value)
    assert line.startswith(f"{name} from https://mirror.example/el7")
    assert REFUSALS[variant] in line and "\n" not in line


def test_half_signed_el7_package_is_what_rpm_calls_not_ok(vendor_rpmdb, vendor_keyring, tmp_path):
    """The issue's package: header+payload signature gone, payload changed, MD5 recomputed.
    Its header signature still verifies; rpm says the header+payload signature is missing."""
    path = make_variant(
        REAL / CENTOS_V3, REAL / CENTOS_V3, "stripped-1002+flipped+md5-resealed", tmp_path
    )
    v = verdicts(path, vendor_rpmdb, vendor_keyring)
    assert "Header V3 RSA/SHA256 Signature, key ID f4a80eb5: OK" in v.rpm_output
    assert "MD5 digest: OK" in v.rpm_output and "RSA signature: NOTFOUND" in v.rpm_output
    assert not v.rpm and not v.airdock
    assert "nothing signed covers its payload" in v.airdock_says


def test_untrusted_real_rpm_names_its_key(vendor_keyring):
    with pytest.raises(VerifyError) as err:
        verify_rpm_signatures(REAL / "pigz-2.3.4-1.el7.x86_64.rpm", vendor_keyring, "epel")
    assert "by key 6a2faea2352c64e5, which is not trusted; pass its public key with --gpg-key" in (
        str(err.value)
    )


def test_real_rpms_signed_by_vendor_keys_verify_with_their_identity(vendor_keyring):
    """CentOS's V3 and Docker's V4 packages through verify_rpm, as builder/bundle.py calls it."""
    centos = verify_rpm(
        REAL / "container-selinux-2.95-2.el7_6.noarch.rpm",
        ("container-selinux", 2, "2.95", "2.el7_6", "noarch"),
        vendor_keyring,
        "vault",
    )
    assert centos.signer == VENDOR_KEYS["RPM-GPG-KEY-CentOS-7.asc"]
    assert centos.signing_key == "24c6a8a7f4a80eb5"
    docker = verify_rpm(
        REAL / DOCKER_V4,
        ("docker-ce-selinux", 0, "17.03.3.ce", "1.el7", "noarch"),
        vendor_keyring,
        "docker",
    )
    assert docker.signer == VENDOR_KEYS["docker-ce-centos.asc"]
    assert docker.signing_key == "c52feb6b621e9f35"


def _cut(at: Callable[[SplitRpm], int]) -> Callable[[bytes, SplitRpm], bytes]:
    return lambda data, rpm: data[: at(rpm)]


def _region_trailer_renamed(data: bytes, rpm: SplitRpm) -> bytes:
    """The signature header's region trailer (the last 16 bytes of its data) names tag 99."""
    il, dl = struct.unpack(">II", data[104:112])
    at = 96 + 16 + 16 * il + dl - 16
    assert data[at : at + 4] == struct.pack(">I", 62)
    return data[:at] + struct.pack(">I", 99) + data[at + 4 :]


MALFORMED = {
    "truncated-lead": _cut(lambda rpm: 50),
    "truncated-signature-header": _cut(lambda rpm: 96 + 40),
    "truncated-header": _cut(lambda rpm: 96 + len(rpm.signature_header()) + 100),
    "bad-lead-magic": lambda data, rpm: b"\0" + data[1:],
    "bad-header-magic": lambda data, rpm: (
        data[: 96 + len(rpm.signature_header())] + b"\0" + data[97 + len(rpm.signature_header()) :]
    ),
    "bad-region-trailer": _region_trailer_renamed,
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_real_rpm_is_unreadable_to_rpm_and_airdock(
    case, vendor_rpmdb, vendor_keyring, tmp_path
):
    data = (REAL / CENTOS_V3).read_bytes()
    path = tmp_path / CENTOS_V3
    path.write_bytes(MALFORMED[case](data, SplitRpm.read(REAL / CENTOS_V3)))
    v = verdicts(path, vendor_rpmdb, vendor_keyring)
    assert not v.rpm and not v.rpm_default
    assert "is not a readable RPM" in v.airdock_says and "\n" not in v.airdock_says


# -- the fixture mirror's packages ------------------------------------------------------------
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


@pytest.mark.parametrize("flip", [False, True], ids=["good", "flipped"])
def test_header_and_payload_signature_in_memory_where_it_cannot_stream(
    fixture_mirror, keyring, tmp_path, monkeypatch, flip
):
    """Without /proc (pysequoia reads the signed bytes through a pipe it opens by name) the
    V4 header+payload signature is checked in memory: the same verdicts."""
    from builder import signatures

    monkeypatch.setattr(signatures, "PROC_FDS", str(tmp_path / "no-proc"))
    src = fixture_mirror.rpm_path("extras", "x86_64", "slirp4netns")
    rpm = tmp_path / src.name
    data = bytearray(src.read_bytes())
    if flip:
        data[-10] ^= 0xFF
    rpm.write_bytes(bytes(data))
    pkg = fixture_mirror.pkg("extras", "x86_64", "slirp4netns")
    if flip:
        with pytest.raises(VerifyError, match=r"bad header\+payload signature \(tag 1002\)"):
            verify_rpm(rpm, expected(pkg), keyring, "fixture")
    else:
        assert verify_rpm(rpm, expected(pkg), keyring, "fixture").name == "slirp4netns"


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


FIXTURE_RPMS = {
    "docker-ce": ("docker-ce-stable", "slirp4netns"),
    "slirp4netns": ("extras", "docker-ce"),
}
# name -> (repo, the other package, signed by the other fixture key)


@pytest.fixture(scope="module")
def fixture_rpmdb(fixture_mirror, tmp_path_factory) -> Path:
    return rpmdb_with(fixture_mirror.keys, tmp_path_factory.mktemp("fixture-rpmdb"))


def fixture_rpm(mirror, name: str) -> Path:
    return mirror.rpm_path(FIXTURE_RPMS[name][0], "x86_64", name)


def header_tags(path: Path) -> set[int]:
    with open(path, "rb") as f:
        rpmheader.read_lead(f)
        rpmheader.read_header(f, signature=True)
        return set(rpmheader.read_header(f, signature=False).entries)


def test_fixture_rpms_carry_header_signatures_over_payload_digests(fixture_mirror):
    """rpm 4.18's rpmbuild puts a payload digest (5092, and 5097 of the uncompressed payload) in
    the header; rpmsign adds header and header+payload signatures and three digests."""
    for name in FIXTURE_RPMS:
        rpm = SplitRpm.read(fixture_rpm(fixture_mirror, name))
        assert {268, 269, 273, 1002, 1004} <= set(rpm.tags())
        assert {5092, 5093, 5097} <= header_tags(fixture_rpm(fixture_mirror, name))


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("name", list(FIXTURE_RPMS))
def test_fixture_rpm_verdict_is_rpms(
    name, variant, fixture_mirror, fixture_rpmdb, keyring, tmp_path
):
    """Here the header signature covers a payload digest: stripping 1002 leaves a package rpm
    still calls signed, and so does airdock — until the payload changes."""
    other = FIXTURE_RPMS[name][1]
    src, other_src = fixture_rpm(fixture_mirror, name), fixture_rpm(fixture_mirror, other)
    v = verdicts(make_variant(src, other_src, variant, tmp_path), fixture_rpmdb, keyring)
    assert "error:" not in v.rpm_output
    assert v.airdock == v.rpm, f"rpm:\n{v.rpm_output}airdock: {v.airdock_says}"
    assert v.rpm == (variant in ACCEPTED_WITH_PAYLOAD_DIGEST), v.rpm_output
    assert v.rpm_default == (v.rpm or variant == "unsigned"), v.rpm_output


def test_payload_digest_mismatch_is_named(fixture_mirror, keyring, tmp_path):
    src = fixture_rpm(fixture_mirror, "slirp4netns")
    path = make_variant(src, src, "stripped-1002+flipped+md5-resealed", tmp_path)
    with pytest.raises(VerifyError) as err:
        verify_rpm_signatures(path, keyring, "fixture")
    assert "its payload digest (tag 5092) does not match the payload" in str(err.value)


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
    # fed in pieces (pysequoia wants one bytes object: the check joins them)
    check = signatures.checker(packet, cert, cert_file)
    assert not check.streams
    for piece in (data[:7], memoryview(data)[7:1000], data[1000:]):
        check.update(piece)
    assert check.verify() == signatures.inspect(packet).issuer


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
    # hashed as it comes: pieces (memoryviews too) verify like the whole
    check = signatures.checker(packet, pysequoia.Cert.from_file(str(public)), public)
    assert check.streams
    for piece in (data[:1], memoryview(data)[1:2000], data[2000:]):
        check.update(piece)
    assert check.verify() == key_id.hex() == signatures.inspect(packet).issuer
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


@pytest.mark.parametrize(
    "variant", ["original", "stripped-1002", "payload-flipped", "stripped-1002+flipped"]
)
def test_v3_signed_rpm_larger_than_a_read_is_hashed_across_chunks(v3_key, tmp_path, variant):
    """A payload of more than two 1 MiB reads (the flipped byte is in the second): the V3
    check, the MD5 and the payload digest each see every chunk once, in order."""
    public, secret = v3_key
    noise = base64.b64encode(os.urandom(3 * CHUNK)).decode()  # compresses to about 2.3 MiB
    pkg = rig.Pkg("big-payload", "1.0", "1", arch="noarch", files={"/usr/share/big/noise": noise})
    rpm = rig.build_rpm(pkg, tmp_path / "out")
    sign_v3(rpm, secret)
    split = SplitRpm.read(rpm)
    assert len(split.rest) - split.header_size > 2 * CHUNK  # so the mid-payload flip is past one
    v = verdicts(
        make_variant(rpm, rpm, variant, tmp_path),
        rpmdb_with([public], tmp_path / "rpmdb"),
        Keyring.load([public]),
    )
    assert v.airdock == v.rpm == (variant in ACCEPTED_WITH_PAYLOAD_DIGEST), v.rpm_output


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
    from tests.test_build import build, json_error_line

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
    lines = [json_error_line(result)]  # --json: the error object, nothing else, on stdout
    assert lines[0] is not None and result.stdout.count("{") == 1, result.output
    assert f"the RPM header says {got.name}-{got.epoch or 0}:{got.version}-{got.release}." \
        f"{file_arch}" in lines[0]  # fmt: skip
    assert f"the repository metadata says {claimed.name}-{claimed.epoch or 0}:" \
        f"{claimed.version}-{claimed.release}.{arch}" in lines[0]  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "bundles").iterdir()) == []
