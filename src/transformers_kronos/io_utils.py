# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""
Writing outputs all-or-nothing, and one-line error messages, for the conversion, forecasting and evaluation scripts.

A script that fails half way must leave neither partial files nor the folders it made for them: outputs are written
under temporary names next to their destination (same file system, so the final rename is atomic) and moved into
place only when everything worked.
"""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Union

PathLike = Union[str, os.PathLike]


def one_line(err: BaseException) -> str:
    """The message of `err` on one line (its whitespace collapsed), or its type's name when it has none."""
    return " ".join(str(err).split()) or type(err).__name__


def _default_mode(mode: int) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def make_folders(folder: PathLike) -> list[Path]:
    """Make `folder` and its missing parents; returns those made, outermost first (see [`remove_folders`])."""
    folder = Path(folder)
    missing = [p for p in (*reversed(folder.parents), folder) if not p.exists()]
    for path in missing:
        path.mkdir()
    return missing


def remove_folders(created: list[Path]) -> None:
    """Remove the folders [`make_folders`] made, innermost first, stopping at the first that is not empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            break


def temporary_sibling(target: PathLike) -> Path:
    """An empty temporary file next to `target` (so that it can replace `target` atomically), readable as usual."""
    target = Path(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix or ".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(name, _default_mode(0o666))  # mkstemp makes private files; the output is an ordinary one
    return Path(name)


@contextlib.contextmanager
def atomic_directory(destination: PathLike) -> Iterator[Path]:
    """
    Build a directory in a temporary sibling of `destination` and move it into place when the block succeeds.

    An existing `destination` is replaced (the caller decides whether it may be). If the block raises, the temporary
    directory and every parent folder made for it are removed and `destination` is left as it was.

    Yields:
        `pathlib.Path`: the temporary directory to write into.
    """
    destination = Path(destination)
    created = make_folders(destination.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-", dir=destination.parent))
    try:
        yield tmp
        os.chmod(tmp, _default_mode(0o777))  # mkdtemp makes a private folder; the output is an ordinary one
        if destination.exists() or destination.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{destination.name}.old-", dir=destination.parent))
            os.replace(destination, old / "previous")
            os.replace(tmp, destination)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, destination)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_folders(created)
        raise


__all__ = ["atomic_directory", "make_folders", "one_line", "remove_folders", "temporary_sibling"]
