"""Write a file all at once: the old file stays whole until the new one is complete.

A write straight into the target truncates it first, so a full disk or an interrupted run leaves a
fragment where the old file was. Here the data goes to a temporary file in the same folder (same file
system, so the rename is atomic), is flushed to disk, and then ``os.replace`` puts it in place.

A target that exists and is not a regular file (a device such as /dev/null or /dev/full, a FIFO, a
socket) is written into directly, as the shell's ``>`` would: a rename would replace the device itself
with a plain file (as root, ``-o /dev/null`` would destroy /dev/null), and such a target has no old
content to keep.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path


def write_atomically(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path``, replacing it only once every byte is written.

    A symbolic link is followed (the file it names is replaced, the link stays). The new file keeps the
    old one's permissions; a new file gets the usual ones (0o666 less the umask). On any error the
    temporary file is removed and the old file is left as it was; the ``OSError`` is raised.
    """
    target = Path(os.path.realpath(path))
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if _is_special(target):
        _write_into(target, payload)
        return
    # os.open with O_EXCL rather than tempfile.mkstemp: mkstemp makes the file 0o600, and the replaced
    # file would keep that mode; os.open lets the umask decide, as a plain open() would. The name is short
    # so that a target name near the file system's limit still leaves room for it.
    temporary = target.with_name(f".chainrule-{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, os.stat(target).st_mode & 0o7777)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _is_special(target: Path) -> bool:
    """Whether ``target`` (links already followed) exists and is not a regular file: a device, a FIFO."""
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)  # a folder is refused by output_problem


def _write_into(target: Path, payload: bytes) -> None:
    """Write into an existing special file: no O_CREAT (nothing is made), no rename, no fsync (EINVAL there).

    O_TRUNC means nothing to a device or a FIFO; it keeps the write whole should a regular file be found here.

    A FIFO blocks here until a reader opens it, as ``> fifo`` does; /dev/full raises ENOSPC.
    """
    with open(os.open(target, os.O_WRONLY | os.O_TRUNC), "wb") as handle:
        handle.write(payload)
        handle.flush()


def _file_above(folder: str) -> str | None:
    """The nearest ancestor of ``folder`` (itself included) that exists and is not a folder."""
    current = folder
    while True:
        if os.path.lexists(current):
            return None if os.path.isdir(current) else current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _name_too_long(path: str) -> str | None:
    """A component of ``path`` longer than its file system allows (``os.path.isdir`` says False, quietly)."""
    existing = path
    while not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    try:
        limit = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255  # the usual limit, where the system does not say
    for name in Path(path).parts:
        if len(os.fsencode(name)) > limit:
            return f"the name {name[:20]}… is {len(os.fsencode(name))} bytes long; this file system allows {limit}"
    return None


def output_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be written as a file, in words; ``None`` when nothing is known against it.

    Asked before any work is done, so that a long derivation is not lost to a typo in the file name.
    Every ``OSError`` is caught: ``Path.is_dir`` raises on a name that is too long, for one.
    """
    text = str(path)
    if not text.strip():
        return "the file name is empty"
    try:
        if os.path.isdir(text):
            return "is a folder; give a file name inside it"
        folder = os.path.dirname(os.path.abspath(text))
        too_long = _name_too_long(os.path.abspath(text))
        if too_long is not None:
            return too_long
        if os.path.isdir(folder):
            return None
        blocking = _file_above(folder)
        if blocking is not None:
            return f"{blocking!r} is a file, not a folder"
        return f"the folder {folder!r} does not exist"
    except OSError as error:
        return error.strerror or str(error)
