"""Atomic file output: write to a temporary sibling, rename only on success."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import Ct2mriError


def _double_suffix(path: Path) -> str:
    suffixes = path.suffixes
    if len(suffixes) >= 2 and suffixes[-1] == ".gz":
        return "".join(suffixes[-2:])
    return path.suffix


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _temporary_patterns(dest: Path) -> list[str]:
    """Names of this module's temporary files for ``dest`` (and for a temporary of it)."""
    tail = f"{glob.escape(dest.name)}.*{glob.escape(_double_suffix(dest))}"
    return [f".{tail}", f"..{tail}"]


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files (and folders: a DICOM series being written) an interrupted
    write of ``path`` left beside it; returns them."""
    dest = Path(path)
    if not dest.parent.is_dir():
        return []
    stale = sorted({p for pattern in _temporary_patterns(dest) for p in dest.parent.glob(pattern)})
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return stale


def ensure_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` and any missing parents (outputs go where the user named them)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise Ct2mriError(f"{folder}: cannot be a folder (a file of that name is in the way)") from None
    except OSError as exc:
        raise Ct2mriError(f"{folder}: cannot create the folder ({exc.strerror or exc})") from None
    return folder


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (links included; paths not there yet compare resolved)."""
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_folder_possible(folder: str | os.PathLike) -> None:
    """Fail early, before any work, when ``folder`` could not be created (a file is in the way) or
    written in (no permission, a read-only file system): a file is made and removed there."""
    for candidate in (Path(folder), *Path(folder).parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise Ct2mriError(f"{candidate}: cannot be a folder (a file of that name is in the way)")
            try:
                with tempfile.TemporaryFile(dir=candidate):
                    pass
            except OSError as exc:
                raise Ct2mriError(f"{folder}: cannot write there ({exc.strerror or exc})") from None
            return


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` when the block succeeds.

    A missing folder (and its parents) is created.
    The temporary name keeps the destination's suffix (``.nii.gz`` included) so writers that
    pick a format from the extension behave the same.  On any exception the temporary file is
    removed and ``path`` is left untouched.
    """
    dest = Path(path)
    ensure_folder(dest.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=_double_suffix(dest), dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
