"""Signing what a publisher ships: detached OpenPGP signatures that CentOS 7 can check.

A bundle crosses an air gap and is run as root, so the operator must be able to tell it
came from its publisher. ``airdock build --sign-key`` signs ``SHA256SUMS`` (which covers
manifest.json, the installer and every other file) and the tarball's ``.sha256``; the
signatures are detached and ASCII-armoured, the way ``gpg --verify FILE.asc FILE`` expects.

What CentOS 7 can verify decides the algorithms: its gpg is GnuPG 2.0.22 and the bundle's
installer checks signatures itself on Python 2.7, so the signing key must be **RSA** (no
EdDSA, no v5/v6 packets) and the hash SHA-256 or SHA-512. Signatures are v4 packets.

Two ways to hold the key:

* ``--sign-key FILE``: an armoured secret key, opened with pysequoia (passphrase from
  ``AIRDOCK_SIGN_PASSPHRASE``); sequoia signs with SHA-512.
* ``--sign-key gpg:FPR``: the key stays in the local gpg-agent (a smartcard, a passphrase
  cache); ``gpg --detach-sign --digest-algo SHA256`` does the signing.

A signature carries its creation time, so two signed builds differ in their ``.asc`` files
(and so in the tarball); everything they sign is byte-identical.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pysequoia

from .errors import UsageError

PASSPHRASE_ENV = "AIRDOCK_SIGN_PASSPHRASE"
_RSA = {"RSAEncryptSign", "RSASign"}
_HASHES = {"SHA256", "SHA512"}


@dataclass
class Signer:
    """Makes detached, armoured signatures; knows its public key."""

    spec: str
    public_key: bytes  # armoured certificate, to ship as keys/publisher.asc
    fingerprint: str  # 40 hex, upper case
    _tsk: pysequoia.Tsk | None = None
    _passphrase: str | None = None

    def sign(self, data: bytes) -> bytes:
        if self._tsk is not None:
            try:
                signer = self._tsk.signer(self._passphrase)
                signature = pysequoia.sign(
                    signer, data, mode=pysequoia.SignatureMode.DETACHED, armor=True
                )
            except Exception as exc:  # pysequoia raises plain exceptions
                raise UsageError(
                    f"--sign-key {self.spec} cannot sign ({_first_line(exc)}); check the key "
                    f"and {PASSPHRASE_ENV}"
                ) from exc
        else:
            signature = _gpg_sign(self.fingerprint, data, self.spec)
        check_el7_compatible(signature, self.spec)
        return signature

    def sign_file(self, path: Path) -> Path:
        """Write ``PATH.asc`` beside ``path``."""
        out = path.with_name(path.name + ".asc")
        out.write_bytes(self.sign(path.read_bytes()))
        return out


def load_signer(spec: str) -> Signer:
    """``FILE`` (an armoured secret key) or ``gpg:FPR`` (a key in the local gpg-agent)."""
    if spec.startswith("gpg:"):
        return _gpg_signer(spec)
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"--sign-key {spec}: no such file; give an armoured secret key or gpg:FPR")
    try:
        tsk = pysequoia.Tsk.from_file(str(path))
    except Exception as exc:
        raise UsageError(
            f"--sign-key {spec} is not an OpenPGP secret key ({_first_line(exc)}); export one "
            "with `gpg --armor --export-secret-keys FPR`"
        ) from exc
    cert = tsk.extract_certificate()
    signer = Signer(spec, str(cert).encode(), cert.fingerprint.upper(), tsk,
                    os.environ.get(PASSPHRASE_ENV))  # fmt: skip
    signer.sign(b"airdock: can this key sign?")  # wrong passphrase or algorithm: fail now
    return signer


def check_el7_compatible(signature: bytes, spec: str) -> None:
    """Refuse what GnuPG 2.0.22 (CentOS 7) or the installer could not verify."""
    sig = pysequoia.Sig.from_bytes(signature)
    algorithm = str(sig.key_algorithm).rsplit(".", 1)[-1]
    digest = str(sig.hash_algorithm).rsplit(".", 1)[-1]
    if sig.version != 4 or algorithm not in _RSA or digest not in _HASHES:
        raise UsageError(
            f"--sign-key {spec} makes a v{sig.version} {algorithm}/{digest} signature, which "
            "CentOS 7 (GnuPG 2.0) cannot check; use an RSA key (e.g. `gpg --quick-gen-key "
            "NAME rsa4096 sign`)"
        )


def _gpg_signer(spec: str) -> Signer:
    fpr = spec[len("gpg:") :].replace(" ", "").upper()
    if len(fpr) != 40 or any(c not in "0123456789ABCDEF" for c in fpr):
        raise UsageError(f"--sign-key {spec}: give the key's full 40-hex fingerprint")
    if shutil.which("gpg") is None:
        raise UsageError(f"--sign-key {spec} needs gpg on this machine; install gnupg")
    proc = subprocess.run(["gpg", "--batch", "--armor", "--export", fpr],
                          capture_output=True, timeout=60)  # fmt: skip
    if proc.returncode or not proc.stdout:
        raise UsageError(f"--sign-key {spec}: gpg has no public key {fpr}; check `gpg -K`")
    signer = Signer(spec, proc.stdout, fpr)
    signer.sign(b"airdock: can this key sign?")
    return signer


def _gpg_sign(fpr: str, data: bytes, spec: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="airdock-sign-") as tmp:
        src = Path(tmp) / "data"
        src.write_bytes(data)
        proc = subprocess.run(
            ["gpg", "--batch", "--yes", "--local-user", fpr + "!", "--digest-algo", "SHA256",
             "--armor", "--detach-sign", "--output", str(src) + ".asc", str(src)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if proc.returncode:
            reason = (proc.stderr.strip().splitlines() or ["no reason given"])[-1]
            raise UsageError(f"--sign-key {spec}: gpg could not sign ({reason})")
        return (Path(tmp) / "data.asc").read_bytes()


def verify_detached(data: bytes, signature: bytes, certs: list[pysequoia.Cert]) -> str:
    """The fingerprint of the certificate in ``certs`` whose key made ``signature`` over
    ``data``; raises ValueError when none did."""
    try:
        sig = pysequoia.Sig.from_bytes(signature)
    except Exception as exc:
        raise ValueError(f"not an OpenPGP signature ({_first_line(exc)})") from exc
    try:
        result = pysequoia.verify(bytes=data, store=lambda _ids: certs, signature=sig)
    except Exception as exc:
        raise ValueError(_first_line(exc)) from exc
    valid = getattr(result, "valid_sigs", None) or []
    if not valid:
        raise ValueError("no known key made this signature")
    return str(valid[0].certificate).upper()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
