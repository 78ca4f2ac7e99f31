"""Small files the user names on the command line (``--baseline-from``, ``--config``).

They are read whole, so the read is bounded: a wrong path (a disk image, /dev/zero) must give
one line, not fill memory. Every way the read can fail is one line naming the option, the
file and what to give instead.
"""

from __future__ import annotations

from pathlib import Path

from .errors import UsageError


def read_user_file(
    path: Path, where: str, limit: int, expected: str, error: type[UsageError] = UsageError
) -> bytes:
    """The bytes of ``path`` (at most ``limit``); ``where`` names the option and the file
    (``--config release.toml``), ``expected`` what the file should be (``the path of a
    release.toml``)."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise error(f"{where}: no such file; give {expected}") from None
    except IsADirectoryError:
        raise error(f"{where} is a folder; give {expected}") from None
    except OSError as exc:
        raise error(f"{where} cannot be read ({exc.strerror}); give {expected}") from None
    if len(data) > limit:
        raise error(f"{where} is larger than {_size(limit)}; give {expected}")
    return data


def decode_user_text(data: bytes, where: str, expected: str, error: type[UsageError]) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{where} is not UTF-8 text; give {expected}") from None


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"
