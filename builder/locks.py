"""Inter-process locks on lock files, so builds sharing an output folder or a cache serialise.

Why ``flock``: the kernel drops a flock lock when the last descriptor of its open file is
closed, which happens however the process ends, SIGKILL included. A lock can therefore never
be stale: a lock file whose lock can be taken belongs to nobody, whatever PID is written in it
(the PID is only there to name the holder in messages). PID files alone would need guessing
whether a PID was reused; ``fcntl`` record locks belong to the process, so two threads of one
build would not exclude each other, and closing any descriptor of the file drops them. flock
locks belong to the open file, so two threads that each open the lock file exclude each other.

Whoever releases a lock removes its file while still holding it, so nothing is left behind.
Whoever takes a lock therefore checks afterwards that the path still names the file it locked
(the holder may have removed it meanwhile) and starts again if not; this also makes it safe
for any process to remove a lock file whose lock it can take (:func:`remove_if_free`).

Filesystems that refuse flock (some FUSE and network mounts) get a one-line warning and no
lock rather than a failed build: the lock guards against a rare accident, and the build
itself still writes everything atomically.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from .errors import AirdockError

# errnos meaning "this filesystem does not do flock", not "someone holds it".
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}
_warned: set[int] = set()  # filesystems (st_dev) already warned about
_warned_lock = threading.Lock()

Notify = Callable[[str], None]


class LockedError(AirdockError):
    """Another live process holds a lock we were told not to wait for."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def warn_once(directory: Path, message: str, warn: Notify) -> None:
    """Say a filesystem cannot lock once per process, not once per lock file on it."""
    device = directory.stat().st_dev
    with _warned_lock:
        if device in _warned:
            return
        _warned.add(device)
    warn(message)


class FileLock:
    """An exclusive flock on ``path``: :meth:`acquire` (or ``with``) takes it, :meth:`release`
    removes the file and drops it.

    ``holder`` says who else would hold it, for messages ("another airdock build writing X in
    Y"); ``advice`` says what to do when a non-waiting :meth:`acquire` finds it taken.
    """

    def __init__(
        self,
        path: Path,
        holder: str = "another airdock process",
        advice: str = "wait for it to finish",
        warn: Notify | None = None,
    ) -> None:
        self.path = Path(path)
        self.holder = holder
        self.advice = advice
        self.warn = warn or _stderr
        self.fd: int | None = None
        self.locked = False  # True only while a real flock is held (not on a lock-less fs)

    def acquire(self, wait: bool = True, on_wait: Notify | None = None) -> None:
        """Take the lock. When someone holds it: with ``wait``, tell ``on_wait`` once
        ("waiting for …") and block until it is free; without, raise LockedError."""
        if not self._take(wait, on_wait):
            raise LockedError(
                f"{self.describe_holder()} is still running (lock {self.path}); {self.advice}"
            )

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; True when taken."""
        return self._take(False, None)

    def _take(self, wait: bool, on_wait: Notify | None) -> bool:
        told = False
        while True:
            fd = _open(self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    os.close(fd)
                    return False
                if on_wait and not told:
                    on_wait(f"waiting for {self._who(fd)}…")
                    told = True
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:  # Ctrl-C or SIGTERM while waiting
                    os.close(fd)
                    raise
            except OSError as exc:
                if exc.errno not in _UNSUPPORTED:
                    os.close(fd)
                    raise
                warn_once(
                    self.path.parent,
                    f"warning: the filesystem of {self.path.parent} cannot lock files "
                    f"({exc.strerror}); continuing without locks, so do not run two airdock "
                    "builds on it at once",
                    self.warn,
                )
                self._own(fd, locked=False)
                return True
            if _same_file(fd, self.path):
                self._own(fd, locked=True)
                return True
            os.close(fd)  # the holder removed the file as it released it: lock the new one

    def _own(self, fd: int, locked: bool) -> None:
        """Keep ``fd``; when locked, write our PID into the file for whoever has to wait."""
        if locked:
            pid = f"{os.getpid()}\n".encode()
            with contextlib.suppress(OSError):  # opened read-only: someone else's lock file
                os.pwrite(fd, pid, 0)
                os.ftruncate(fd, len(pid))  # after the write: a reader never sees it empty
        self.fd, self.locked = fd, locked

    def describe_holder(self) -> str:
        """The holder description, with the PID written in the lock file when there is one."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return self.holder
        try:
            return self._who(fd)
        finally:
            os.close(fd)

    def _who(self, fd: int) -> str:
        pid = _read_pid(fd)
        return f"{self.holder} (pid {pid})" if pid else self.holder

    def release(self, remove: bool = True) -> None:
        """Remove the lock file while still holding it (``remove``), then drop the lock."""
        if self.fd is None:
            return
        try:
            if remove and _same_file(self.fd, self.path):
                self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)
            self.fd, self.locked = None, False

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def remove_if_free(path: Path, also: Callable[[], None] | None = None) -> bool:
    """Remove a lock file nobody holds, calling ``also`` first under the lock; True if so.

    On a filesystem without flock a live holder cannot be told from a dead one, so nothing
    is removed there.
    """
    existed = path.exists()
    lock = FileLock(path)
    if not lock.try_acquire():
        return False
    if not lock.locked:
        lock.release(remove=not existed)  # leave no lock file of ours behind either
        return False
    try:
        if also:
            also()
    finally:
        lock.release()
    return True


def _open(path: Path) -> int:
    """Open (creating) a lock file; read-only will do where it is someone else's file,
    since flock needs no write access."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        return os.open(path, os.O_RDONLY)


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
