"""Rewriting an RPM's signature header: the part of the file no signature covers.

An RPM is lead (96 bytes) | signature header (padded to 8 bytes) | header | payload. ``rpmsign``
only ever rewrites the signature header, and so can an attacker: this module splits a file into
those parts, lets a test drop, add or replace signature-header entries (or the header+payload
after it), and writes the signature header back the way rpm lays it out — the ``62`` region tag
first, entries in index order with their data aligned, the region trailer last — so that rpm
reads the result and judges only what changed. It is written apart from ``builder.rpmheader``
on purpose: the tests must not check the builder's parser with itself.

    rpm = SplitRpm.read(path)
    rpm.without(1002).with_payload_byte_flipped().write(dest)
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

LEAD_SIZE = 96
MAGIC = b"\x8e\xad\xe8\x01\x00\x00\x00\x00"
REGION_TAG = 62
BIN = 7
ALIGN = {3: 2, 4: 4, 5: 8}  # INT16, INT32, INT64; every other type is byte-aligned
SIZES = {0: 0, 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1}

# Signature header tags.
DSAHEADER, RSAHEADER, SHA1HEADER, SHA256HEADER = 267, 268, 269, 273
PGP, MD5, GPG = 1002, 1004, 1005
SIGNATURES = (DSAHEADER, RSAHEADER, PGP, GPG)
DIGESTS = (SHA1HEADER, SHA256HEADER, MD5)


@dataclass(frozen=True)
class SigEntry:
    tag: int
    type: int
    count: int
    data: bytes


@dataclass(frozen=True)
class SplitRpm:
    lead: bytes
    entries: tuple[SigEntry, ...]  # index order, without the region tag
    rest: bytes  # header + payload: what the signatures and digests cover

    @classmethod
    def read(cls, path: Path) -> SplitRpm:
        data = Path(path).read_bytes()
        lead, at = data[:LEAD_SIZE], LEAD_SIZE
        assert data[at : at + 8] == MAGIC, f"{path}: no signature header"
        il, dl = struct.unpack(">II", data[at + 8 : at + 16])
        index = [
            struct.unpack(">iiii", data[at + 16 + 16 * i : at + 32 + 16 * i]) for i in range(il)
        ]
        store = data[at + 16 + 16 * il : at + 16 + 16 * il + dl]
        entries = []
        for tag, typ, offset, count in index:
            if tag == REGION_TAG:
                continue
            entries.append(
                SigEntry(
                    tag, typ, count, store[offset : offset + _length(typ, count, store, offset)]
                )
            )
        end = at + 16 + 16 * il + dl
        end += -end % 8
        return cls(lead, tuple(entries), data[end:])

    # -- what the signature header says
    def tags(self) -> list[int]:
        return [e.tag for e in self.entries]

    def entry(self, tag: int) -> SigEntry:
        return next(e for e in self.entries if e.tag == tag)

    @property
    def header_size(self) -> int:
        il, dl = struct.unpack(">II", self.rest[8:16])
        return 16 + 16 * il + dl

    # -- variants
    def without(self, *tags: int) -> SplitRpm:
        return dataclasses.replace(
            self, entries=tuple(e for e in self.entries if e.tag not in tags)
        )

    def with_entry(self, entry: SigEntry) -> SplitRpm:
        others = [e for e in self.entries if e.tag != entry.tag]
        return dataclasses.replace(
            self, entries=tuple(sorted([*others, entry], key=lambda e: e.tag))
        )

    def with_signature_header_of(self, other: SplitRpm) -> SplitRpm:
        return dataclasses.replace(self, entries=other.entries)

    def with_payload_byte_flipped(self) -> SplitRpm:
        at = self.header_size + (len(self.rest) - self.header_size) // 2
        rest = bytearray(self.rest)
        rest[at] ^= 0xFF
        return dataclasses.replace(self, rest=bytes(rest))

    def with_payload_truncated(self, size: int = 100) -> SplitRpm:
        return dataclasses.replace(self, rest=self.rest[:-size])

    def with_md5_resealed(self) -> SplitRpm:
        """The header+payload MD5 (tag 1004) recomputed over what the file now holds."""
        return self.with_entry(SigEntry(MD5, BIN, 16, hashlib.md5(self.rest).digest()))

    # -- writing
    def signature_header(self) -> bytes:
        store, index = bytearray(), []
        for e in self.entries:
            store += b"\0" * (-len(store) % ALIGN.get(e.type, 1))
            index.append(struct.pack(">iiii", e.tag, e.type, len(store), e.count))
            store += e.data
        il = len(self.entries) + 1
        region = struct.pack(">iiii", REGION_TAG, BIN, len(store), 16)
        store += struct.pack(">iiii", REGION_TAG, BIN, -16 * il, 16)  # the region trailer
        blob = MAGIC + struct.pack(">II", il, len(store)) + region + b"".join(index) + store
        return blob + b"\0" * (-len(blob) % 8)

    def to_bytes(self) -> bytes:
        return self.lead + self.signature_header() + self.rest

    def write(self, path: Path) -> Path:
        Path(path).write_bytes(self.to_bytes())
        return Path(path)


def _length(typ: int, count: int, store: bytes, offset: int) -> int:
    if typ in (6, 8, 9):  # STRING, STRING_ARRAY, I18NSTRING: count NUL-terminated strings
        at = offset
        for _ in range(count):
            at = store.index(b"\0", at) + 1
        return at - offset
    return SIZES[typ] * count
