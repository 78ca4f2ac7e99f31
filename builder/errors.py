"""Error types whose message is the one line a user sees.

Every failure a user can cause or fix (bad option, unreachable mirror, missing
package, checksum mismatch) is raised as an ``AirdockError`` subclass. The CLI
catches the base class once, prints ``Error: <message>`` and exits non-zero;
anything else is a bug and keeps its traceback (shown with ``--debug``).
"""

from __future__ import annotations


class AirdockError(Exception):
    """A failure with a message fit for the user: what went wrong and what to do."""

    exit_code = 1


class UsageError(AirdockError):
    """Options that cannot work together or name nothing real."""

    exit_code = 2


class MirrorError(AirdockError):
    """A mirror or registry could not be reached or answered with an error."""


class NotFoundError(MirrorError):
    """The server answered, but the file, package or image does not exist there."""


class ChecksumError(AirdockError):
    """Downloaded bytes do not match the digest the metadata promised."""


class ResolveError(AirdockError):
    """The requested packages cannot be installed from the chosen repositories."""


class VerifyError(AirdockError):
    """An RPM or image failed a content check (header, signature, digest)."""
