"""OpenPGP signatures over RPM data: V4 with pysequoia, V3 on ``cryptography``.

Why two paths: CentOS 7's RPMs were signed by rpm 4.11 with **V3** signature
packets (``rpm -K`` on el7 prints "Header V3 RSA/SHA256 Signature"), while
Docker's are V4. pysequoia verifies V4 signatures, but its StandardPolicy
rejects every V3 packet since 2021-02-01 and pysequoia offers no way to pass
another policy. A V3 signature is a fixed 19-byte preamble and one MPI
(RFC 4880 §5.2.2), so the V3 path reads the packets (signature and key
material) with pysequoia's own packet parser and leaves the RSA PKCS#1 v1.5
check to ``cryptography``: framing by hand, no cryptography by hand.

What is accepted, as rpm's ``verifySignature``: exactly one signature packet,
over a *binary document* (type 0x00), by a key of the certificate it is checked
against. Where this is stricter than rpm 4.18, on purpose: a V3 signature must
be RSA with SHA-224 or stronger (no CentOS 7 or Docker package is signed with
less), and a V4 one must also pass sequoia's StandardPolicy (which refuses
SHA-1, for one). :func:`checker` gives a check that is fed the signed data in pieces:
a V3 check hashes as it goes (an RPM's header+payload is read once, in chunks);
pysequoia takes the signed data only as one ``bytes`` object, so a V4 check
keeps what it is fed and :attr:`Check.streams` tells the caller to pass the
data in one piece. Which RPM tags must carry which signatures is
:mod:`builder.rpmverify`'s business.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pysequoia
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from pysequoia.packet import PacketPile, SignatureType, Tag

RSA_ALGORITHMS = {1, 3}  # RSA (encrypt or sign), RSA sign-only
V3_HASHES: dict[int, Callable[[], hashes.HashAlgorithm]] = {
    8: hashes.SHA256,
    9: hashes.SHA384,
    10: hashes.SHA512,
    11: hashes.SHA224,
}
BINARY_DOCUMENT = 0x00
PROC_FDS = "/proc/self/fd"  # a pipe's read end, opened by name for pysequoia


class SignatureError(Exception):
    """A signature that does not verify, or that we refuse to check; one line."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _mpi(buf: bytes, at: int) -> tuple[int, int]:
    if at + 2 > len(buf):
        raise SignatureError("truncated packet")
    bits = struct.unpack(">H", buf[at : at + 2])[0]
    end = at + 2 + (bits + 7) // 8
    if end > len(buf):
        raise SignatureError("truncated packet")
    return int.from_bytes(buf[at + 2 : end], "big"), end


def _only_packet(data: bytes, tag: Tag) -> pysequoia.packet.Packet:
    try:
        packets = list(PacketPile.from_bytes(data))
    except Exception as exc:  # pysequoia raises plain exceptions on parse errors
        raise SignatureError(f"unreadable signature packet ({_first_line(exc)})") from exc
    if len(packets) != 1 or packets[0].tag != tag:
        raise SignatureError("not a single signature packet")
    packet: pysequoia.packet.Packet = packets[0]
    return packet


def rsa_public_keys(cert_path: Path) -> dict[str, rsa.RSAPublicKey]:
    """Key id (16 hex, lower) -> RSA public key, for the primary key and every subkey."""
    keys: dict[str, rsa.RSAPublicKey] = {}
    for packet in PacketPile.from_file(str(cert_path)):
        if packet.tag not in (Tag.PublicKey, Tag.PublicSubkey):
            continue
        body = bytes(packet.body)
        if len(body) < 6 or body[0] != 4 or body[5] not in RSA_ALGORITHMS:
            continue  # only V4 RSA keys can have made the signatures we check by hand
        n, at = _mpi(body, 6)
        e, _ = _mpi(body, at)
        keys[packet.key_id.lower()] = rsa.RSAPublicNumbers(e, n).public_key()
    return keys


def key_ids(cert_path: Path) -> list[str]:
    """Key ids (16 hex, lower) of the primary key and every subkey of a certificate."""
    return sorted(
        p.key_id.lower()
        for p in PacketPile.from_file(str(cert_path))
        if p.tag in (Tag.PublicKey, Tag.PublicSubkey)
    )


@dataclass(frozen=True)
class PacketInfo:
    version: int  # 3 or 4
    issuer: str | None  # 16 hex, lower case
    binary: bool  # a signature over a binary document (what rpm requires)


def inspect(packet: bytes) -> PacketInfo:
    """Version, issuer and type of one signature packet; SignatureError if it is not one."""
    sig = _only_packet(packet, Tag.Signature)
    issuer = sig.issuer_key_id or (sig.issuer_fingerprint or "")[-16:] or None
    return PacketInfo(
        int(sig.signature_version or 0),
        issuer.lower() if issuer else None,
        sig.signature_type == SignatureType.Binary,
    )


class Check:
    """A signature check fed the signed data with :meth:`update`, then :meth:`verify`."""

    streams = True  # False: feed the data in one ``bytes`` piece (or it is copied once)

    def update(self, data: bytes | memoryview) -> None:
        raise NotImplementedError

    def update_from(self, f: BinaryIO, start: int) -> None:
        """Feed ``f``'s bytes from ``start`` to its end (a check that cannot stream reads
        them itself in :meth:`verify`, from the file, never all at once)."""
        f.seek(start)
        while chunk := f.read(1 << 20):
            self.update(chunk)

    def verify(self) -> str:
        """Raise SignatureError unless the signature is good; return the signer's key id."""
        raise NotImplementedError


def checker(packet: bytes, cert: pysequoia.Cert, cert_path: Path) -> Check:
    """The check of ``packet`` against ``cert`` (read from ``cert_path``)."""
    info = inspect(packet)
    if info.version == 3:
        return V3Check(packet, rsa_public_keys(cert_path))
    return V4Check(packet, cert, info)


def verify(data: bytes, packet: bytes, cert: pysequoia.Cert, cert_path: Path) -> None:
    """Raise SignatureError unless ``packet`` is a valid signature by ``cert`` over ``data``."""
    check = checker(packet, cert, cert_path)
    check.update(data)
    check.verify()


class V4Check(Check):
    """pysequoia's verification (its policy included) of a V4 signature."""

    streams = False

    def __init__(self, packet: bytes, cert: pysequoia.Cert, info: PacketInfo) -> None:
        if not info.binary:
            raise SignatureError("signature not over a binary document")
        try:
            self._sig = pysequoia.Sig.from_bytes(packet)
        except Exception as exc:
            raise SignatureError(f"unreadable signature packet ({_first_line(exc)})") from exc
        self._cert = cert
        self._issuer = info.issuer or ""
        self._pieces: list[bytes | memoryview] = []
        self._file: tuple[BinaryIO, int] | None = None

    def update(self, data: bytes | memoryview) -> None:
        self._pieces.append(data)

    def update_from(self, f: BinaryIO, start: int) -> None:
        if not os.path.isdir(PROC_FDS) or shutil.which("cat") is None or self._pieces:
            super().update_from(f, start)  # no /proc or cat: in memory, as pysequoia wants it
        else:
            self._file = (f, start)

    def verify(self) -> str:
        try:
            if self._file is not None:
                self._verify_file(*self._file)
            else:
                pieces = self._pieces
                data = (
                    pieces[0]
                    if len(pieces) == 1 and isinstance(pieces[0], bytes)
                    else b"".join(pieces)
                )
                pysequoia.verify(bytes=data, store=lambda _ids: [self._cert], signature=self._sig)
        except SignatureError:
            raise
        except Exception as exc:
            raise SignatureError(_first_line(exc)) from exc
        return self._issuer

    def _verify_file(self, f: BinaryIO, start: int) -> None:
        """pysequoia reads a named file as a stream (memory stays flat however large the
        RPM), but holds the GIL while it reads: the bytes from ``start`` reach it through a
        pipe fed by a ``cat`` that shares ``f``'s open file (a thread could not feed it)."""
        read_end, write_end = os.pipe()
        try:
            f.seek(start)
            feeder = subprocess.Popen(  # noqa: S603, S607 - fixed argv, no shell
                ["cat"], stdin=f, stdout=write_end, stderr=subprocess.DEVNULL
            )
        except OSError as exc:
            os.close(read_end)
            raise SignatureError(f"cannot stream the signed data ({exc})") from exc
        finally:
            os.close(write_end)
        try:
            pysequoia.verify(
                file=f"{PROC_FDS}/{read_end}", store=lambda _ids: [self._cert], signature=self._sig
            )
        finally:
            os.close(read_end)  # a verification that stopped early ends cat with SIGPIPE
            feeder.wait()


class V3Check(Check):
    """A V3 RSA signature (RFC 4880 §5.2.2), hashed as the data comes."""

    def __init__(self, packet: bytes, keys: dict[str, rsa.RSAPublicKey]) -> None:
        body = bytes(_only_packet(packet, Tag.Signature).body)
        if len(body) < 19 or body[0] != 3 or body[1] != 5:
            raise SignatureError("malformed V3 signature packet")
        sig_type, key_id, algorithm, hash_id = body[2], body[7:15].hex(), body[15], body[16]
        if sig_type != BINARY_DOCUMENT:
            raise SignatureError(
                f"V3 signature of type {sig_type:#04x}, not over a binary document"
            )
        if algorithm not in RSA_ALGORITHMS:
            raise SignatureError(f"V3 signature with public-key algorithm {algorithm}, not RSA")
        if hash_id not in V3_HASHES:
            raise SignatureError(f"V3 signature with hash algorithm {hash_id} (SHA-1/MD5 refused)")
        key = keys.get(key_id)
        if key is None:
            raise SignatureError(f"V3 signature by key {key_id}, which this certificate lacks")
        self._body, self._key, self._key_id = body, key, key_id
        self._algo = V3_HASHES[hash_id]()
        self._digest = hashes.Hash(self._algo)

    def update(self, data: bytes | memoryview) -> None:
        self._digest.update(data)

    def verify(self) -> str:
        body, key = self._body, self._key
        self._digest.update(body[2:7])  # signature type and creation time: the V3 trailer
        value = self._digest.finalize()
        if value[:2] != body[17:19]:
            raise SignatureError("digest does not match (the data was altered)")
        s, _ = _mpi(body, 19)
        try:
            signature = s.to_bytes((key.key_size + 7) // 8, "big")
            key.verify(signature, value, padding.PKCS1v15(), utils.Prehashed(self._algo))
        except (InvalidSignature, OverflowError):  # OverflowError: an MPI wider than the key
            raise SignatureError("bad RSA signature") from None
        return self._key_id


def verify_v3(data: bytes, packet: bytes, keys: dict[str, rsa.RSAPublicKey]) -> str:
    """Check a V3 RSA signature (RFC 4880 §5.2.2); return the signer's key id."""
    check = V3Check(packet, keys)
    check.update(data)
    return check.verify()
