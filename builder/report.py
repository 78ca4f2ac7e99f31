"""What a build tells its user, as an interface: steps and long byte-counted steps.

Kept apart from :mod:`builder.plan` so the CLI can subclass it (tqdm bars) without importing
the solver and the downloader at start-up; ``builder.plan`` re-exports it.
"""

from __future__ import annotations

from pathlib import Path


class Reporter:
    """What a build tells its user; the CLI subclasses it with tqdm bars."""

    def step(self, message: str) -> None:  # noqa: B027 - optional hook
        pass

    def bytes_started(self, label: str, total: int, watch: Path | None = None) -> None:  # noqa: B027
        """A long step of about ``total`` bytes begins; its progress comes as
        :meth:`bytes_advanced` calls, or (``watch``) as the growth of the files written
        directly in that folder, for steps such as writing the tarball that have no hook."""

    def bytes_advanced(self, count: int) -> None:  # noqa: B027
        pass

    def bytes_finished(self) -> None:  # noqa: B027
        pass
