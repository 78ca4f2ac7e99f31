"""The publisher of the rig's bundles: an RSA key made by gpg, as a release engineer would.

Bundles built for the sandbox host are signed with it (``airdock build --sign-key``), and a
sandbox host trusts it by default (its ``/etc/airdock/trusted-keys``), like a fleet whose
kickstart provisioned the publisher's key.  The fixture RPMs are signed by test keys, not by
Docker's or CentOS's, so it is the publisher's signature that vouches for them.

Tests that tamper with a bundle and rewrite SHA256SUMS re-sign it too (:func:`resign`): the
deeper checks (RPM signatures, the manifest) are tested as if the attacker also held the
publisher's key; what an attacker without it meets is tested on its own.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .tools import need, run

UID = "airdock test publisher <publisher@example.invalid>"


@dataclass(frozen=True)
class Publisher:
    secret: Path  # armoured secret key, no passphrase (airdock build --sign-key)
    public: Path  # armoured public key (what a host trusts)
    fingerprint: str  # 40 hex, upper case


def make_publisher(folder: Path, uid: str = UID, algo: str = "rsa3072") -> Publisher:
    """A fresh key; gpg's home is a short temporary folder (its agent socket path is bounded)
    and is removed, agent and all, before returning."""
    need("gpg")
    folder.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="gpgpub-"))
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback",
           "--passphrase", ""]  # fmt: skip
    try:
        run([*gpg, "--quick-gen-key", uid, algo, "sign", "never"])
        colons = run([*gpg, "--with-colons", "--list-keys", uid]).stdout
        fingerprint = colons.split("fpr:::::::::")[1][:40]
        public, secret = folder / "publisher.asc", folder / "publisher.secret.asc"
        public.write_text(run([*gpg, "--armor", "--export", fingerprint]).stdout)
        secret.write_text(run([*gpg, "--armor", "--export-secret-keys", fingerprint]).stdout)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
        shutil.rmtree(home, ignore_errors=True)
    return Publisher(secret, public, fingerprint.upper())


_current: Publisher | None = None


def use(publisher: Publisher) -> Publisher:
    """Make ``publisher`` the one :func:`resign` signs with (the session fixture does)."""
    global _current
    _current = publisher
    return publisher


def resign(bundle: Path) -> None:
    """Sign SHA256SUMS again after it was rewritten (only when the bundle was signed)."""
    asc = Path(bundle) / "SHA256SUMS.asc"
    if not asc.exists() or _current is None:
        return
    from builder.signing import load_signer

    load_signer(str(_current.secret)).sign_file(Path(bundle) / "SHA256SUMS")
