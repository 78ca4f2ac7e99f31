"""Digests as remotes state them, validated before anything uses them.

A digest arrives from an untrusted place (repomd.xml, primary.xml, a registry's
descriptor or ``Docker-Content-Digest`` header) and is then used as a cache path,
an archive member name and a file name. So :class:`Digest` can only be made from
an algorithm it knows and a value of exactly that algorithm's length in lower-case
hex: ``sha256:../../victim`` is refused where it is parsed, and every path derived
from a ``Digest`` is safe by construction (pip's ``hashes.py`` is the model).

Policy: sha256 and sha512 (and createrepo's sha224/sha384) are strong. sha1 and
md5 are accepted only because old yum repositories genuinely use them (createrepo
< 0.9 wrote ``sha``); they verify a download but never key the cache. Registry
digests (OCI ``algorithm:encoded``) must be sha256 or sha512.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# algorithm -> hex length
STRONG = {"sha256": 64, "sha512": 128, "sha224": 56, "sha384": 96}
WEAK = {"sha1": 40, "md5": 32}
_ALIASES = {"sha": "sha1"}  # repomd.xml of createrepo < 0.9
_REGISTRY_RE = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")
CHUNK = 1 << 20


@dataclass(frozen=True)
class Digest:
    """A validated checksum: a known algorithm and lower-case hex of its exact length."""

    algo: str
    value: str

    def __post_init__(self) -> None:
        length = {**STRONG, **WEAK}.get(self.algo)
        if length is None:
            raise ValueError(f"unsupported checksum type {self.algo!r}")
        if not re.fullmatch(f"[0-9a-f]{{{length}}}", self.value):
            raise ValueError(f"not a {self.algo} digest: {_shown(self.value)}")

    @classmethod
    def of(cls, algo: str, value: str) -> Digest:
        """From repository metadata (``type="sha256"`` and the hex text); case-insensitive."""
        algo = algo.strip().lower()
        return cls(_ALIASES.get(algo, algo), value.strip().lower())

    @classmethod
    def parse(cls, text: str) -> Digest:
        """An OCI digest ``sha256:<64 hex>`` or ``sha512:<128 hex>``, exactly (registries)."""
        if not _REGISTRY_RE.match(text):
            raise ValueError(f"not a sha256 or sha512 digest: {_shown(text)}")
        algo, value = text.split(":", 1)
        return cls(algo, value)

    @property
    def strong(self) -> bool:
        return self.algo in STRONG

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algo)

    def __str__(self) -> str:
        return f"{self.algo}:{self.value}"


def is_registry_digest(text: str) -> bool:
    return bool(_REGISTRY_RE.match(text))


def file_digest(path: Path, algos: Iterable[str] = ("sha256",)) -> dict[str, str]:
    """Hash a file once with several algorithms."""
    hashers = {a: hashlib.new(a) for a in algos}
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}


def _shown(text: str) -> str:
    """A remote's text quoted on one line and cut short, for an error message."""
    return repr(text[:80] + ("…" if len(text) > 80 else ""))
