"""The structure of an RPM file, read the way rpm 4.18 reads it before it checks a signature.

::

    lead (96 bytes) | signature header, zero-padded to a multiple of 8 | header | payload

Both headers are *header blobs*: an 8-byte magic, the number of index entries ``il`` and the
size of the data store ``dl`` (32-bit big-endian), ``il`` 16-byte entries (tag, type, offset,
count) and ``dl`` bytes of data. The signature header's digests and signatures cover the
**header** (from its magic to the end of its data store) and the **payload** (everything after
it, to the end of the file); the lead and the signature header itself are covered by nothing,
which is why they can be rewritten (``rpmsign``) without touching the package.

Every check rpm makes in ``hdrblobRead``/``hdrblobInit`` (lib/header.c) before it believes an
index is made here too: the lead's magic, version and signature type; ``il``/``dl`` limits
(32 entries and 64 MiB for the signature header); the region tag and its trailer when the
first entry is one; known types, aligned offsets, data that lies in ascending order, does not
overlap the region trailer and fits the store. A file that fails one is refused before any tag
is read. As rpm's ``hdrblobGet``, a tag present twice is read from its first entry.

Why by hand instead of ``rpmfile`` (which airdock used before): the signature check must see
the signature header's own tags (267/268/269/273/1002/1004/1005) apart from the main header's
and the exact byte ranges each covers, and a file from a mirror is untrusted input: rpmfile
merges both headers into one mapping by tag name, reads a hostile index without rpm's bounds
checks, and its errors are assertions. The format is small and fixed (lib/header.c); the
cryptography stays in pysequoia and ``cryptography``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

LEAD_SIZE = 96
LEAD_MAGIC = b"\xed\xab\xee\xdb"
HEADER_MAGIC = b"\x8e\xad\xe8\x01\x00\x00\x00\x00"
SIGTYPE_HEADERSIG = 5  # the only signature type rpm >= 4 reads from the lead

# Region tags: the first entry of a header, with a 16-byte trailer in the data store.
HEADERIMAGE, HEADERSIGNATURES, HEADERIMMUTABLE = 61, 62, 63
I18NTABLE = 100  # tags below this are reserved for regions

# Entry types and their element size (-1: NUL-terminated strings) and alignment.
NULL, CHAR, INT8, INT16, INT32, INT64, STRING, BIN, STRING_ARRAY, I18NSTRING = range(10)
TYPE_SIZES = (0, 1, 1, 2, 4, 8, -1, 1, -1, -1)
TYPE_ALIGN = (1, 1, 1, 2, 4, 8, 1, 1, 1, 1)

HEADER_TAGS_MAX = 0xFFFF
HEADER_DATA_MAX = 0x0FFFFFFF
HEADER_ARRAY_MAX = 0x000FFFFF
HEADER_MAX_BYTES = 256 * 1024 * 1024
SIGNATURE_TAGS_MAX = 32
SIGNATURE_DATA_MAX = 64 * 1024 * 1024
ENTRY = struct.Struct(">iiii")  # tag, type, offset, count (rpm reads them as signed)


class RpmFormatError(Exception):
    """The file is not an RPM rpm would read; one line."""


@dataclass(frozen=True)
class Entry:
    tag: int
    type: int
    count: int
    data: bytes  # exactly the entry's bytes in the data store


@dataclass(frozen=True)
class HeaderBlob:
    raw: bytes  # magic to the end of the data store: what a digest or signature covers
    entries: dict[int, Entry]  # first entry of each tag

    def get(self, tag: int) -> Entry | None:
        return self.entries.get(tag)

    def string(self, tag: int) -> str | None:
        """A STRING (or single I18NSTRING) entry, or None when absent or of another type."""
        entry = self.entries.get(tag)
        if entry is None or entry.type not in (STRING, I18NSTRING):
            return None
        return entry.data.split(b"\0", 1)[0].decode("utf-8", "replace")

    def strings(self, tag: int) -> list[str] | None:
        """The elements of a STRING_ARRAY entry, or None when absent or of another type."""
        entry = self.entries.get(tag)
        if entry is None or entry.type != STRING_ARRAY:
            return None
        return [s.decode("utf-8", "replace") for s in entry.data.split(b"\0")[: entry.count]]

    def int32(self, tag: int) -> int | None:
        """The first element of an INT32 entry, or None when absent or of another type."""
        entry = self.entries.get(tag)
        if entry is None or entry.type != INT32:
            return None
        value: int = struct.unpack(">I", entry.data[:4])[0]
        return value


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise RpmFormatError(f"{what} is truncated ({len(data)} of {n} bytes)")
    return data


def read_lead(f: BinaryIO) -> None:
    """Read and check the 96-byte lead (lib/rpmlead.c); nothing in it is used or covered."""
    lead = _read_exact(f, LEAD_SIZE, "the lead")
    if lead[:4] != LEAD_MAGIC:
        raise RpmFormatError("no RPM lead magic")
    if lead[4] not in (3, 4):
        raise RpmFormatError(f"unsupported RPM format version {lead[4]}")
    if struct.unpack(">H", lead[78:80])[0] != SIGTYPE_HEADERSIG:
        raise RpmFormatError("the lead names an unsupported signature type")


def read_header(f: BinaryIO, signature: bool) -> HeaderBlob:
    """Read the signature header (and its padding) or the header from ``f``'s position."""
    what = "the signature header" if signature else "the header"
    intro = _read_exact(f, 16, what)
    if intro[:8] != HEADER_MAGIC:
        raise RpmFormatError(f"{what} has no header magic")
    il, dl = struct.unpack(">ii", intro[8:16])
    il_max, dl_max = (
        (SIGNATURE_TAGS_MAX, SIGNATURE_DATA_MAX)
        if signature
        else (HEADER_TAGS_MAX, HEADER_DATA_MAX)
    )
    if not 0 <= il <= il_max or not 0 <= dl <= dl_max:
        raise RpmFormatError(f"{what} claims {il} entries and {dl} bytes of data")
    if 8 + 16 * il + dl >= HEADER_MAX_BYTES:
        raise RpmFormatError(f"{what} is larger than rpm allows")
    body = _read_exact(f, 16 * il + dl, what)
    if signature:
        pad = -(8 + len(intro) + len(body)) % 8  # rpm pads magic + blob to 8 bytes
        _read_exact(f, pad, "the signature header's padding")
    return HeaderBlob(intro + body, _index(body, il, dl, signature, what))


def _index(body: bytes, il: int, dl: int, signature: bool, what: str) -> dict[int, Entry]:
    entries = [ENTRY.unpack_from(body, 16 * i) for i in range(il)]
    store = body[16 * il :]
    region_tag = _region(entries, store, il, dl, signature, what)
    result: dict[int, Entry] = {}
    checked = entries[1:] if region_tag else entries
    rdl = entries[0][2] + 16 if region_tag else 0
    end = 0
    for i, (tag, typ, offset, count) in enumerate(checked):
        bad = f"{what}: entry {i} (tag {tag} type {typ} offset {offset} count {count}) is malformed"
        if end > offset or tag < I18NTABLE or not NULL <= typ <= I18NSTRING:
            raise RpmFormatError(bad)
        if count < 1 or count > dl or offset % TYPE_ALIGN[typ] or not 0 <= offset <= dl:
            raise RpmFormatError(bad)
        if typ != BIN and count > HEADER_ARRAY_MAX:
            raise RpmFormatError(bad)
        length = _data_length(typ, count, store, offset)
        end = offset + length
        if length <= 0 or end > dl:
            raise RpmFormatError(bad)
        if region_tag and end > rdl - 16 and offset < rdl:  # overlaps the region trailer
            raise RpmFormatError(bad)
        result.setdefault(tag, Entry(tag, typ, count, store[offset:end]))
    return result


def _region(
    entries: list[tuple[int, int, int, int]], store: bytes, il: int, dl: int, sig: bool, what: str
) -> int:
    """The region tag when the first entry is one (and is sound), 0 when there is none."""
    if il < 1:
        raise RpmFormatError(f"{what} has no entries")
    tag, typ, offset, count = entries[0]
    region_tag = HEADERSIGNATURES if sig else HEADERIMMUTABLE
    if tag != region_tag:
        return 0  # legacy: no region (rpm reads it all the same)
    if typ != BIN or count != 16 or not 0 <= offset <= dl - 16:
        raise RpmFormatError(f"{what}: region tag {tag} is malformed")
    t_tag, t_type, t_offset, t_count = ENTRY.unpack_from(store, offset)
    if sig and t_tag == HEADERIMAGE:
        t_tag = HEADERSIGNATURES  # some old packages; rpm fixes them up
    if (t_tag, t_type, t_count) != (region_tag, BIN, 16):
        raise RpmFormatError(f"{what}: region trailer is malformed")
    ril, rdl = -t_offset // 16, offset + 16
    if -t_offset % 16 or not 0 <= ril <= il or not 0 <= rdl <= dl:
        raise RpmFormatError(f"{what}: region size is malformed")
    if not sig and (ril != il or rdl != dl):  # the header must be one region in a package
        raise RpmFormatError(f"{what}: region does not span the whole header")
    return region_tag


def _data_length(typ: int, count: int, store: bytes, offset: int) -> int:
    if typ in (STRING, STRING_ARRAY, I18NSTRING):
        if typ == STRING and count != 1:
            return -1
        at = offset
        for _ in range(count):
            nul = store.find(b"\0", at)
            if nul < 0:
                return -1
            at = nul + 1
        return at - offset
    length = TYPE_SIZES[typ] * count
    return length if len(store) - offset >= length else -1
