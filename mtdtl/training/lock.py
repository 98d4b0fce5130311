"""One trainer per run folder: :class:`RunLock`, an exclusive lock on ``<run>/.lock``.

Two trainers writing the same run folder would interleave ``log.jsonl`` and overwrite each
other's checkpoints. :func:`mtdtl.training.train` therefore holds an exclusive ``fcntl.flock``
on ``<run>/.lock`` while it works; the file records the holder's pid, host and start time so
that a second trainer's error can say who holds the folder.

- The kernel drops a ``flock`` when its process dies, however it dies: the lock of a killed
  trainer is taken over by the next one (the file left behind is only a name).
- The lock file is removed on release. A trainer that opened the old file just before it was
  removed would lock a file no longer in the folder; each acquisition therefore checks, after
  locking, that the path still names the file it locked, and retries otherwise.
- Where the file system has no ``flock`` (some network mounts), the recorded pid decides: a
  lock of a live process on this host is refused, any other is taken over (with a warning).
- Locks are per open file, so a second trainer in the *same* process (a notebook cell run
  twice in threads) is refused too.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = ["RunLock"]

log = get_logger(__name__)

_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}


class RunLock:
    """Exclusive lock of a run folder (a context manager; :meth:`acquire` / :meth:`release`).

    Parameters
    ----------
    folder : path
        The run folder (must exist).
    name : str
        Lock file name inside it.
    """

    def __init__(self, folder: str | os.PathLike, *, name: str = ".lock") -> None:
        self.folder = Path(folder)
        self.path = self.folder / name
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _busy(self, info: dict) -> MtdtlError:
        who = f"pid {info.get('pid', '?')}" + (f" on {info['host']}" if info.get("host") else "")
        since = f", since {info['started']}" if info.get("started") else ""
        return MtdtlError(f"{self.folder} is in use by another trainer ({who}{since}): two trainers in one run "
                          "folder would corrupt it. Wait for it to finish (or stop it), or choose another out_dir")

    def acquire(self) -> "RunLock":
        """Take the lock, or raise :class:`MtdtlError` naming the trainer that holds it."""
        import fcntl

        if self._fd is not None:
            return self
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as err:
                raise MtdtlError(f"cannot create the lock file {self.path}: {err}") from err
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as err:
                    if err.errno in _BUSY:
                        raise self._busy(_holder(self.path)) from None
                    self._no_flock(err)  # no flock here: the recorded pid decides
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if not same:  # removed by its previous holder between our open and our lock
                    os.close(fd)
                    continue
                old = _holder(self.path)
                if old.get("pid") and old.get("pid") != os.getpid():
                    log.info("taking over the lock of %s left by pid %s (no longer running)", self.folder,
                             old.get("pid"))
                info = {"pid": os.getpid(), "host": socket.gethostname(),
                        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
                self._fd = fd
                return self
            except BaseException:
                if self._fd is None:
                    os.close(fd)
                raise
        raise MtdtlError(f"could not lock {self.path}: it keeps being replaced (another trainer starting and "
                         "stopping in a loop?); try again")

    def _no_flock(self, err: OSError) -> None:
        info = _holder(self.path)
        pid = int(info.get("pid") or 0)
        if pid and pid != os.getpid() and info.get("host") == socket.gethostname() and _pid_alive(pid):
            raise self._busy(info)
        log.warning("the file system of %s does not support flock (%s): locking by pid only", self.folder, err)

    def release(self) -> None:
        """Drop the lock and remove the lock file (a no-op when not held)."""
        import fcntl

        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            try:
                if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                    self.path.unlink()
            except FileNotFoundError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            pass
        finally:
            os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
