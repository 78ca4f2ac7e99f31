"""OpenPGP V3 RSA/SHA256 signatures, the kind rpm 4.11 put on CentOS 7's RPMs.

gpg 2.2 no longer makes V3 signatures, yet every real CentOS 7 package carries
them, so the rig makes its own from a throwaway gpg key: the secret key is
exported unprotected, its RSA numbers are read from the packet, and
``cryptography`` signs. As a script it stands in for gpg in rpmsign's
``%__gpg_sign_cmd``, so rpm itself writes the V3 packets into real RPMs::

    rpmsign --addsign --rpmv3 \\
        --define "__gpg_sign_cmd PYTHON PYTHON v3sign.py SECRET -sbo %{__signature_filename}"

(rpm execs the first word with the rest as argv, and pipes the data to stdin).
"""

from __future__ import annotations

import hashlib
import struct
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from pysequoia.packet import PacketPile, Tag


def _mpi(buf: bytes, at: int) -> tuple[int, int]:
    bits = struct.unpack(">H", buf[at : at + 2])[0]
    end = at + 2 + (bits + 7) // 8
    return int.from_bytes(buf[at + 2 : end], "big"), end


def load_secret_key(path: Path) -> tuple[rsa.RSAPrivateKey, bytes]:
    """The RSA key and 8-byte key id of an unprotected exported gpg secret key."""
    for packet in PacketPile.from_file(str(path)):
        if packet.tag != Tag.SecretKey:
            continue
        body = bytes(packet.body)
        assert body[0] == 4 and body[5] in (1, 3), "need a V4 RSA key"
        n, at = _mpi(body, 6)
        e, at = _mpi(body, at)
        public = body[:at]
        assert body[at] == 0, "the secret key must be exported without a passphrase"
        d, at = _mpi(body, at + 1)
        p, at = _mpi(body, at)
        q, at = _mpi(body, at)
        key_id = hashlib.sha1(b"\x99" + struct.pack(">H", len(public)) + public).digest()[-8:]
        numbers = rsa.RSAPrivateNumbers(
            p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(e, n)
        )
        return numbers.private_key(), key_id
    raise AssertionError(f"no secret key in {path}")


def v3_signature(
    data: bytes,
    key: rsa.RSAPrivateKey,
    key_id: bytes,
    created: int | None = None,
    sig_type: int = 0x00,
) -> bytes:
    """A binary OpenPGP V3 signature packet (old format, tag 2) over ``data``."""
    trailer = bytes([sig_type]) + struct.pack(">I", created or int(time.time()))
    digest = hashlib.sha256(data + trailer).digest()
    signature = key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    value = int.from_bytes(signature, "big")
    mpi = struct.pack(">H", value.bit_length()) + value.to_bytes(
        (value.bit_length() + 7) // 8, "big"
    )
    body = bytes([3, 5]) + trailer + key_id + bytes([1, 8]) + digest[:2] + mpi
    return bytes([0x89]) + struct.pack(">H", len(body)) + body


def main(argv: list[str]) -> int:
    secret, rest = Path(argv[1]), argv[2:]
    out = Path(rest[rest.index("-sbo") + 1])
    data = (
        Path(rest[rest.index("--") + 1]).read_bytes() if "--" in rest else sys.stdin.buffer.read()
    )
    key, key_id = load_secret_key(secret)
    out.write_bytes(v3_signature(data, key, key_id))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
