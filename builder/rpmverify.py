"""Checking a downloaded RPM: header identity and OpenPGP signatures.

The checksum from primary.xml proves the file is what the mirror's metadata
says; this module proves the metadata told the truth about *what* it is and
*who* signed it. The header is read with rpmfile; the signatures (RSA header
signature, tag 268, over the header; and the el7 header+payload signature,
tag 1002) are checked by :mod:`builder.signatures` (pysequoia; V3 packets, as
on CentOS 7's RPMs, on ``cryptography``) against keys the user trusts (the
pinned vendor keys shipped with airdock, plus any ``--gpg-key``), so an
unsigned or re-signed package never reaches a bundle.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pysequoia
import rpmfile

from . import signatures
from .errors import UsageError, VerifyError

KEYS_DIR = Path(__file__).with_name("keys")
# Pinned vendor keys (el7-facts.md): file name -> fingerprint.
VENDOR_KEYS = {
    "docker-ce-centos.asc": "060A61C51B558A7F742B77AAC52FEB6B621E9F35",
    "RPM-GPG-KEY-CentOS-7.asc": "6341AB2753D78A78A7C27BB124C6A8A7F4A80EB5",
}


# Vendor keys not shipped (not in our reference set), fetched from the vault on demand
# and trusted only when the fingerprint matches the pin (el7-facts.md).
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


@dataclass(frozen=True)
class RpmIdentity:
    name: str
    epoch: int
    version: str
    release: str
    arch: str
    signing_key: str | None  # 16 hex lower, from the signature packet
    signer: str | None = None  # fingerprint of the trusted certificate that verified it


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_identity(path: Path) -> tuple[RpmIdentity, dict[str, bytes], bytes, bytes]:
    """Header identity, the signature packets, the header bytes and header+payload bytes."""
    try:
        with rpmfile.open(str(path)) as rpm:
            h = rpm.headers
            start, end = rpm.header_range
            ident = RpmIdentity(
                name=_text(h["name"]),
                epoch=int(h.get("serial") or h.get("epoch") or 0),
                version=_text(h["version"]),
                release=_text(h["release"]),
                arch=_text(h["arch"]),
                signing_key=None,
            )
            sigs = {k: bytes(h[k]) for k in ("rsaheader", "pgp") if h.get(k)}
    except (
        KeyError,
        ValueError,
        IndexError,
        OSError,
        AssertionError,
        struct.error,
        rpmfile.errors.RPMError,
    ) as exc:  # rpmfile's errors on malformed input
        raise VerifyError(
            f"{path.name} is not a readable RPM ({exc or type(exc).__name__}); "
            "the download is damaged — delete the cache entry and rebuild"
        ) from exc
    data = path.read_bytes()
    key_id = None
    for packet in sigs.values():
        key_id = _issuer(packet)
        if key_id:
            break
    return (
        RpmIdentity(ident.name, ident.epoch, ident.version, ident.release, ident.arch, key_id),
        sigs,
        data[start:end],
        data[start:],
    )


def _issuer(packet: bytes) -> str | None:
    try:
        sig = pysequoia.Sig.from_bytes(packet)
    except Exception:
        return None
    if sig.issuer_key_id:
        return sig.issuer_key_id.lower()
    if sig.issuer_fingerprint:
        return sig.issuer_fingerprint.lower()[-16:]
    return None


def verify_rpm(
    path: Path, expected: tuple[str, int, str, str, str], keyring: Keyring, source: str
) -> RpmIdentity:
    """Check name/epoch/version/release/arch against the metadata and the signatures.

    Raises VerifyError with the file, what differs and what to do.
    """
    ident, sigs, header, header_payload = read_identity(path)
    got = (ident.name, ident.epoch, ident.version, ident.release, ident.arch)
    if got != tuple(expected):
        raise VerifyError(
            f"{path.name} from {source}: the RPM header says {_nevra(got)} but the repository "
            f"metadata says {_nevra(tuple(expected))}; the mirror is inconsistent — try another"
        )
    if not sigs:
        raise VerifyError(
            f"{path.name} from {source} is not signed; refusing an unsigned "
            "package (the target installs with gpgcheck on)"
        )
    key = keyring.by_key_id(ident.signing_key or "")
    if key is None:
        raise VerifyError(
            f"{path.name} is signed by key {ident.signing_key or '?'}, which is not trusted; "
            "pass its public key with --gpg-key FILE if you trust it"
        )
    for tag, packet in sigs.items():
        signed = header if tag == "rsaheader" else header_payload
        try:
            signatures.verify(signed, packet, key.cert, key.path)
        except signatures.SignatureError as exc:
            raise VerifyError(
                f"{path.name} from {source}: bad {tag} signature for key {key.fingerprint} "
                f"({exc}); the file was altered after signing — do not use this mirror"
            ) from exc
    return dataclasses.replace(ident, signer=key.fingerprint)


def _nevra(t: tuple) -> str:
    name, epoch, version, release, arch = t
    return f"{name}-{epoch}:{version}-{release}.{arch}"
