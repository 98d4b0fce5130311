"""File helpers shared by every module: atomic writes, file hashes, package versions.

Atomic writes: a file is written to a temporary name in its own folder, flushed to disk and
moved into place with ``os.replace`` (atomic on POSIX): readers see the old file or the new
one, never a part. A failed write (a full disk, an exception, Ctrl-C) removes the temporary
file and leaves the old file as it was. Files get the permissions the process' umask gives
(``mkstemp`` alone would leave them at 0600, unreadable by a lab's group on a shared data dir).
Every module writes through :func:`atomic_path` or the helpers built on it; none has its own.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import platform
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_savez", "atomic_save_npy",
           "file_sha256", "package_versions"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    Write the file under the yielded name (any library that takes a path); when the block ends
    without an exception the file is fsynced, given the umask's permissions and moved into
    place. On an exception nothing is left behind and ``path`` is untouched. A full disk is
    reported as an :class:`~mtdtl.errors.MtdtlError` naming the file.
    """
    from mtdtl.errors import MtdtlError

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes[-1:]),
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if fsync:
            with open(tmp_path, "rb") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise MtdtlError(f"no space left on the device while writing {path}; free some space and run "
                             "again (nothing was changed)") from e
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> None:
    """:func:`atomic_write_bytes` for text."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_savez(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``np.savez`` to ``path``, atomically (the archive is built in memory first)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def atomic_save_npy(path: str | os.PathLike, arr: np.ndarray) -> None:
    """``np.save`` to ``path``, atomically, streamed to disk (no copy in memory)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, arr)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks): the one file hash of mtdtl."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_VERSIONS = {
    "numpy": lambda: np.__version__,
    "torch": lambda: __import__("torch").__version__,
    "librosa": lambda: __import__("librosa").__version__,
    "soundfile": lambda: __import__("soundfile").__version__,
    "libsndfile": lambda: __import__("soundfile").__libsndfile_version__,
    "soxr": lambda: __import__("soxr").__version__,
    "safetensors": lambda: __import__("safetensors").__version__,
    "scikit-learn": lambda: __import__("sklearn").__version__,
    "music21": lambda: __import__("music21").__version__,
    "pretty_midi": lambda: __import__("importlib.metadata").metadata.version("pretty_midi"),
    "tinysoundfont": lambda: __import__("importlib.metadata").metadata.version("tinysoundfont"),
}


def package_versions(*names: str) -> dict[str, str]:
    """Versions of mtdtl, Python and the named packages (those in ``_VERSIONS``), for provenance.

    A package that is not installed is recorded as ``"missing"``. When mtdtl runs from a git
    checkout, its commit is recorded too (``mtdtl_commit``).
    """
    import mtdtl

    out = {"mtdtl": mtdtl.__version__, "python": platform.python_version()}
    commit = _git_commit()
    if commit:
        out["mtdtl_commit"] = commit
    for n in names:
        try:
            out[n] = str(_VERSIONS[n]())
        except KeyError:
            raise KeyError(f"package_versions: no version getter for {n!r}") from None
        except Exception:
            out[n] = "missing"
    return out


def _git_commit() -> str | None:
    """The commit of the checkout mtdtl is imported from (None when not a git checkout)."""
    root = Path(__file__).resolve().parent.parent
    head = root / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            ref_path = root / ".git" / ref[5:]
            if ref_path.is_file():
                return ref_path.read_text().strip()
            packed = root / ".git" / "packed-refs"
            for line in packed.read_text().splitlines() if packed.is_file() else []:
                if line.endswith(" " + ref[5:]):
                    return line.split()[0]
            return None
        return ref or None
    except OSError:
        return None
