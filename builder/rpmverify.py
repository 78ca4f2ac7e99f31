"""Checking a downloaded RPM: header identity, digests and OpenPGP signatures.

The checksum from primary.xml proves the file is what the mirror's metadata says; this module
proves the metadata told the truth about *what* it is and *who* signed it. A package is accepted
exactly when rpm 4.18 says "digests signatures OK" for it (``rpmkeys -K``, lib/rpmvs.c) with
only the trusted keys imported — the pinned vendor keys shipped with airdock, plus any
``--gpg-key`` — and an unsigned package never (stricter than rpm, too, on the weak signature
hashes :mod:`builder.signatures` refuses).

An RPM is lead | signature header | header | payload (:mod:`builder.rpmheader`). The signature
header carries signatures over the **header** (tag 268 RSA, 267 DSA) or over **header+payload**
(1002 PGP, 1005 GPG), digests of the header (269 SHA1, 273 SHA256) and of header+payload (1004
MD5). The header itself may carry a SHA-256 digest of the payload (5092, with its algorithm in
5093; rpm 4.18 checks it, and its alternative 5097, as SHA-256 of the payload bytes in the file
whatever 5093 says, and one of the two matching excuses the other). Accepted only when:

* the package carries a signature, and **every** signature it carries is readable, over a
  binary document, by a trusted key and good; every digest it carries is well-formed and
  matches;
* something **signed covers the payload**: a header+payload signature (1002/1005), or a header
  signature (268/267) over a header whose payload digest (5092/5097) matches the payload. el7's
  rpm wrote no payload digest, so an el7 package whose 1002 was stripped ("half-signed") is
  refused: its header signature would vouch for any payload;
* digests cover the header (269, 273 or 1004) and the payload (1004, 5092 or 5097), which rpm
  requires of a signed package too.

Refused: unsigned; signed by a key that is not trusted (rpm: NOKEY); half-signed; a bad
signature or digest; a signature header taken from another package; an unreadable file. Each is
a :class:`VerifyError` whose one line names the file and what is missing. rpm's default
``%_pkgverify_level digest`` lets ``rpm -K`` pass an unsigned package on its digests alone;
airdock is rpm with ``%_pkgverify_level all``, as the target's gpgcheck demands.

Signatures are checked by :mod:`builder.signatures` (pysequoia; V3 packets, as on CentOS 7's
RPMs, on ``cryptography``). Header+payload is read once and hashed once by each digest and
signature that covers it, in 1 MiB chunks; pysequoia takes signed data only as one ``bytes``,
so for a V4 header+payload signature (Docker's) header+payload is read into memory in one piece
instead (memory the size of the package) and every check is fed from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import pysequoia

from . import rpmheader, signatures
from .errors import UsageError, VerifyError
from .names import nevra_text
from .rpmheader import BIN, INT16, INT32, INT64, STRING, STRING_ARRAY, HeaderBlob

KEYS_DIR = Path(__file__).with_name("keys")
# Pinned vendor keys (docs/el7-facts.md#signing-keys): file name -> fingerprint.
VENDOR_KEYS = {
    "docker-ce-centos.asc": "060A61C51B558A7F742B77AAC52FEB6B621E9F35",
    "RPM-GPG-KEY-CentOS-7.asc": "6341AB2753D78A78A7C27BB124C6A8A7F4A80EB5",
}


# Vendor keys not shipped (not in our reference set), fetched from the vault on demand
# and trusted only when the fingerprint matches the pin (docs/el7-facts.md#signing-keys).
FETCHED_KEYS = {
    "aarch64": ("RPM-GPG-KEY-CentOS-7-aarch64", "EF8F3CA66EFDF32B36CDADF76C7CB6EF305D49D6"),
}


VENDOR_FINGERPRINTS = frozenset([*VENDOR_KEYS.values(), *(f for _, f in FETCHED_KEYS.values())])


@dataclass(frozen=True)
class TrustedKey:
    path: Path
    fingerprint: str  # 40 hex, upper case
    key_ids: tuple[str, ...]  # 16 hex, lower case: primary and subkeys
    cert: pysequoia.Cert


class Keyring:
    """The OpenPGP certificates an RPM may be signed with."""

    def __init__(self, keys: Iterable[TrustedKey]) -> None:
        self.keys = list(keys)

    @classmethod
    def load(cls, extra: Iterable[Path] = ()) -> Keyring:
        keys = []
        for name, fingerprint in VENDOR_KEYS.items():
            key = _load_key(KEYS_DIR / name)
            if key.fingerprint != fingerprint:
                raise VerifyError(
                    f"the shipped key {name} has fingerprint {key.fingerprint}, "
                    f"expected {fingerprint}; reinstall airdock"
                )
            keys.append(key)
        for path in extra:
            keys.append(_load_key(Path(path), user=True))
        return cls(keys)

    def add_pinned(self, path: Path, fingerprint: str) -> TrustedKey | None:
        """Trust ``path`` only if it is the key with ``fingerprint``; None otherwise."""
        try:
            key = _load_key(path)
        except UsageError:
            return None
        if key.fingerprint != fingerprint:
            return None
        if all(k.fingerprint != fingerprint for k in self.keys):
            self.keys.append(key)
        return key

    def by_key_id(self, key_id: str) -> TrustedKey | None:
        if not key_id:
            return None
        for key in self.keys:
            if key_id.lower() in key.key_ids or key.fingerprint.lower().endswith(key_id.lower()):
                return key
        return None


def _load_key(path: Path, user: bool = False) -> TrustedKey:
    try:
        cert = pysequoia.Cert.from_file(str(path))
    except Exception as exc:  # pysequoia raises plain exceptions for I/O and parse errors
        what = "--gpg-key" if user else "shipped key"
        raise UsageError(
            f"{what} {path} is not a readable OpenPGP public key ({exc}); "
            "give an ASCII-armoured or binary public key file"
        ) from exc
    fpr = cert.fingerprint.upper()
    ids = set(signatures.key_ids(Path(path))) | {fpr[-16:].lower()}
    return TrustedKey(Path(path), fpr, tuple(sorted(ids)), cert)


# Signature header tags (rpm's RPMSIGTAG_* and RPMTAG_*HEADER).
DSAHEADER, RSAHEADER, SHA1HEADER, SHA256HEADER = 267, 268, 269, 273
SIG_PGP, SIG_MD5, SIG_GPG = 1002, 1004, 1005
# Header tags.
NAME, VERSION, RELEASE, EPOCH, ARCH = 1000, 1001, 1002, 1003, 1022
PAYLOADDIGEST, PAYLOADDIGESTALT = 5092, 5097

HEADER_SIGNATURES = {
    RSAHEADER: "header signature (tag 268)",
    DSAHEADER: "header signature (tag 267)",
}
FULL_SIGNATURES = {
    SIG_PGP: "header+payload signature (tag 1002)",
    SIG_GPG: "header+payload signature (tag 1005)",
}
# tag: (what, hashlib name, stored as: "hex" string of that many digits, "bin" of that many bytes)
HEADER_DIGESTS = {
    SHA1HEADER: ("header SHA1 digest (tag 269)", "sha1", "hex", 40),
    SHA256HEADER: ("header SHA256 digest (tag 273)", "sha256", "hex", 64),
}
FULL_DIGESTS = {SIG_MD5: ("header+payload MD5 digest (tag 1004)", "md5", "bin", 16)}
CHUNK = 1 << 20
HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True)
class RpmIdentity:
    name: str
    epoch: int
    version: str
    release: str
    arch: str
    signing_key: str | None  # 16 hex lower, from the signature packet
    signer: str | None = None  # fingerprint of the trusted certificate that verified it


@dataclass(frozen=True)
class _Rpm:
    """What is read before the payload: both headers, and where the header starts."""

    path: Path
    label: str  # "FILE" or "FILE from SOURCE", for messages
    signature: HeaderBlob
    header: HeaderBlob
    header_start: int
    identity: RpmIdentity


@dataclass(frozen=True)
class _Signature:
    tag: int
    what: str
    packet: bytes
    issuer: str
    key: TrustedKey


@dataclass(frozen=True)
class _Digest:
    tag: int
    what: str
    algorithm: str
    expected: str  # hex, lower case


def read_identity(path: Path) -> RpmIdentity:
    """Name, epoch, version, release, arch and issuer key id, as read (not verified)."""
    with _opened(path) as f:
        return _read(path, f, None).identity


def verify_rpm(
    path: Path, expected: tuple[str, int, str, str, str], keyring: Keyring, source: str
) -> RpmIdentity:
    """Check name/epoch/version/release/arch against the metadata, then digests and signatures.

    Raises VerifyError with the file, what differs or is missing, and what to do.
    """
    with _opened(path) as f:
        rpm = _read(path, f, source)
        ident = rpm.identity
        got = (ident.name, ident.epoch, ident.version, ident.release, ident.arch)
        if got != tuple(expected):
            raise VerifyError(
                f"{rpm.label}: the RPM header says {_nevra(got)} but the repository "
                f"metadata says {_nevra(expected)}; the mirror is inconsistent — try another"
            )
        return _verify(rpm, f, keyring)


def verify_rpm_signatures(path: Path, keyring: Keyring, source: str | None = None) -> RpmIdentity:
    """Check one RPM file's digests and signatures, with no repository metadata to compare its
    identity with (what ``rpmkeys -K`` checks): the identity its header states, and its signer."""
    with _opened(path) as f:
        return _verify(_read(path, f, source), f, keyring)


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    """``open(path, "rb")`` whose OSError, also while reading, is a one-line VerifyError."""
    try:
        with open(path, "rb") as f:
            yield f
    except OSError as exc:
        raise _unreadable(Path(path), exc) from exc


def _unreadable(path: Path, why: object) -> VerifyError:
    return VerifyError(
        f"{path.name} is not a readable RPM ({why}); "
        "the download is damaged — delete the cache entry and rebuild"
    )


def _read(path: Path, f: BinaryIO, source: str | None) -> _Rpm:
    label = f"{path.name} from {source}" if source else path.name
    try:
        rpmheader.read_lead(f)
        signature = rpmheader.read_header(f, signature=True)
        start = f.tell()
        header = rpmheader.read_header(f, signature=False)
    except rpmheader.RpmFormatError as exc:
        raise _unreadable(path, exc) from exc
    name, version = header.string(NAME), header.string(VERSION)
    release, arch = header.string(RELEASE), header.string(ARCH)
    if name is None or version is None or release is None or arch is None:
        raise _unreadable(path, "its header lacks a name, version, release or arch")
    issuer = None
    for tag in (*FULL_SIGNATURES, *HEADER_SIGNATURES):
        entry = _lookup(signature, tag)
        if issuer is None and entry is not None and entry.type == BIN:
            with contextlib.suppress(signatures.SignatureError):  # _verify says so
                issuer = signatures.inspect(entry.data).issuer
    ident = RpmIdentity(name, header.int32(EPOCH) or 0, version, release, arch, issuer)
    return _Rpm(path, label, signature, header, start, ident)


def _lookup(blob: HeaderBlob, tag: int) -> rpmheader.Entry | None:
    """The entry rpm's hdrblobGet gives: none for byte-swapped types, which it cannot read."""
    entry = blob.get(tag)
    return None if entry is None or entry.type in (INT16, INT32, INT64) else entry


def _verify(rpm: _Rpm, f: BinaryIO, keyring: Keyring) -> RpmIdentity:
    """rpm's "digests signatures OK", or VerifyError; ``f`` stands at the payload."""
    sigs = _signatures(rpm, keyring)
    header_digests = _digests(rpm, HEADER_DIGESTS)
    full_digests = _digests(rpm, FULL_DIGESTS)
    payload_digests, payload_malformed = _payload_digests(rpm.header)
    full_sigs = [s for s in sigs if s.tag in FULL_SIGNATURES]
    has_payload_digest = bool(payload_digests) or payload_malformed
    if not full_sigs and not has_payload_digest:
        raise VerifyError(
            f"{rpm.label} has only a header signature and no payload digest: nothing signed "
            "covers its payload; refusing it — use another mirror"
        )
    uncovered = [
        part
        for part, covered in (
            ("header", header_digests or full_digests),
            ("payload", full_digests or has_payload_digest),
        )
        if not covered
    ]
    if uncovered:
        raise VerifyError(
            f"{rpm.label} carries no digest of its {' or '.join(uncovered)}, which rpm requires; "
            "refusing it — use another mirror"
        )

    checks = {}
    for sig in sigs:
        try:
            checks[sig.tag] = signatures.checker(sig.packet, sig.key.cert, sig.key.path)
        except signatures.SignatureError as exc:
            raise _bad(rpm, sig, exc) from exc
    header = rpm.header.raw
    header_sums = {d.tag: hashlib.new(d.algorithm) for d in header_digests}
    header_sinks: list[Sink] = [*header_sums.values()]
    header_sinks += [checks[s.tag] for s in sigs if s not in full_sigs]
    for sink in header_sinks:
        sink.update(header)
    # header+payload, hashed once by everything that covers it (or just the payload), one
    # piece at a time; a check that cannot stream (pysequoia's) reads the file itself
    full_hashes = [hashlib.new(d.algorithm) for d in full_digests]
    streaming = [checks[s.tag] for s in full_sigs if checks[s.tag].streams]
    full_sinks: list[Sink] = [*full_hashes, *streaming]
    payload_sum = hashlib.sha256()
    for sink in full_sinks:
        sink.update(header)
    for chunk in iter(lambda: f.read(CHUNK), b""):
        for sink in (*full_sinks, payload_sum):
            sink.update(chunk)
    for sig in full_sigs:
        if not checks[sig.tag].streams:
            checks[sig.tag].update_from(f, rpm.header_start)

    for sig in sigs:
        try:
            checks[sig.tag].verify()
        except signatures.SignatureError as exc:
            raise _bad(rpm, sig, exc) from exc
    sums = [*header_sums.values(), *full_hashes]
    for digest, sink in zip([*header_digests, *full_digests], sums):
        if sink.hexdigest() != digest.expected:
            raise VerifyError(
                f"{rpm.label}: its {digest.what} does not match; the file was altered — "
                "do not use this mirror"
            )
    payload_ok = _check_payload_digests(
        rpm, payload_digests, payload_malformed, payload_sum.hexdigest()
    )
    if not full_sigs and not payload_ok:  # (a failed payload digest has said so already)
        raise VerifyError(
            f"{rpm.label}: nothing signed covers its payload; refusing it — use another mirror"
        )
    signer = (full_sigs or sigs)[0]
    return dataclasses.replace(
        rpm.identity, signing_key=signer.issuer, signer=signer.key.fingerprint
    )


def _signatures(rpm: _Rpm, keyring: Keyring) -> list[_Signature]:
    """Every signature the package carries, each readable and by a trusted key."""
    found = []
    for tag, what in {**HEADER_SIGNATURES, **FULL_SIGNATURES}.items():
        entry = _lookup(rpm.signature, tag)
        if entry is None:
            continue
        try:
            if entry.type != BIN:
                raise signatures.SignatureError(f"stored as type {entry.type}, not binary")
            info = signatures.inspect(entry.data)
        except signatures.SignatureError as exc:
            raise VerifyError(
                f"{rpm.label}: its {what} is unreadable ({exc}); the file is damaged or was "
                "tampered with — use another mirror"
            ) from exc
        key = keyring.by_key_id(info.issuer or "")
        if key is None:
            raise VerifyError(
                f"{rpm.label}: its {what} is by key {info.issuer or '?'}, which is not trusted; "
                "pass its public key with --gpg-key FILE if you trust it"
            )
        found.append(_Signature(tag, what, entry.data, info.issuer or "", key))
    if not found:
        raise VerifyError(
            f"{rpm.label} is not signed; refusing an unsigned package "
            "(the target installs with gpgcheck on)"
        )
    return found


def _bad(rpm: _Rpm, sig: _Signature, exc: Exception) -> VerifyError:
    return VerifyError(
        f"{rpm.label}: bad {sig.what} by key {sig.key.fingerprint} ({exc}); the file was "
        "altered after signing — do not use this mirror"
    )


def _digests(rpm: _Rpm, table: dict[int, tuple[str, str, str, int]]) -> list[_Digest]:
    """The signature header's digests in ``table``, each well-formed as rpmsinfoInit wants."""
    found = []
    for tag, (what, algorithm, form, size) in table.items():
        entry = _lookup(rpm.signature, tag)
        if entry is None:
            continue
        if form == "bin" and entry.type == BIN and entry.count == size:
            found.append(_Digest(tag, what, algorithm, entry.data.hex()))
            continue
        text = rpm.signature.string(tag) if entry.type == STRING else None
        if form == "hex" and text is not None and len(text) == size and _valid_hex(text):
            found.append(_Digest(tag, what, algorithm, text.lower()))
            continue
        raise VerifyError(
            f"{rpm.label}: its {what} is malformed; the file is damaged or was tampered with "
            "— use another mirror"
        )
    return found


def _valid_hex(text: str) -> bool:
    """rpm's validHex: an even number, at least 40, of hex digits."""
    return len(text) % 2 == 0 and len(text) >= 40 and set(text) <= HEX_DIGITS


def _payload_digests(header: HeaderBlob) -> tuple[list[tuple[int, str]], bool]:
    """The header's payload digests (5092, 5097) as (rpm's check id, hex), and whether one is
    malformed. rpm makes one check per array element, with id ``tag << 16 | index``; a
    malformed element (another type, not hex) is a failed check with id 0."""
    valid, malformed = [], False
    for tag in (PAYLOADDIGEST, PAYLOADDIGESTALT):
        entry = _lookup(header, tag)
        if entry is None:
            continue
        if entry.type != STRING_ARRAY:
            malformed = True
            continue
        for index, text in enumerate(header.strings(tag) or []):
            if _valid_hex(text):
                valid.append((tag << 16 | index, text.lower()))
            else:
                malformed = True
    return valid, malformed


def _check_payload_digests(
    rpm: _Rpm, valid: list[tuple[int, str]], malformed: bool, actual: str
) -> bool:
    """Raise VerifyError unless every payload digest check passes or is excused; return whether
    one matched. As rpm's rpmvsVerify: a failed check is excused when the first other check, in
    descending id order, matched (so 5097, the digest of the uncompressed payload that rpm 4.18
    compares with the compressed bytes, is excused by a matching 5092)."""
    ok = {check: expected == actual for check, expected in valid}
    order = sorted(ok, reverse=True)

    def excused(check: int) -> bool:
        return next((ok[other] for other in order if other != check), False)

    failed = [check for check in order if not ok[check] and not excused(check)]
    if failed or (malformed and not excused(0)):
        raise VerifyError(
            f"{rpm.label}: its payload digest (tag {PAYLOADDIGEST}) does not match the payload; "
            "the file was altered — do not use this mirror"
        )
    return any(ok.values())


def _nevra(t: Sequence[Any]) -> str:
    name, epoch, version, release, arch = t
    return nevra_text(str(name), int(epoch), str(version), str(release), str(arch))


class Sink(Protocol):
    """What the one pass over an RPM feeds: a hash or a signature checker."""

    def update(self, data: bytes, /) -> None: ...
