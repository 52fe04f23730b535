"""Paths from user input, confined to their folder, and files written whole or not at all.

Every file name a user types (a LoRA's ``save_name``, a model or LoRA picked from a folder) is
resolved with symlinks followed and must land inside its folder; a ``path`` input naming a file
anywhere must be a regular, readable file of the expected kind. All of it is checked before any
expensive work, so a bad name never costs a training run.

Writes go to a new file beside the target, are flushed to disk and then renamed over it: readers
see the old file or the whole new one, never half of it.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from pathlib import Path, PureWindowsPath

from .errors import DragKitInputError, DragKitModelError

# The longest file or folder name most file systems take (ext4, XFS, APFS, NTFS: 255).
MAX_NAME_BYTES = 255
# The longest whole path accepted from a user (Linux's PATH_MAX).
MAX_PATH_BYTES = 4096


def _check_text(value: object, input_name: str, example: str) -> str:
    if not isinstance(value, str):
        raise DragKitInputError(f"`{input_name}` must be text, got {type(value).__name__}; e.g. {example!r}.")
    value = value.strip()
    if not value:
        raise DragKitInputError(f"`{input_name}` is empty; give a file name, e.g. {example!r}.")
    if "\x00" in value:
        raise DragKitInputError(f"`{input_name}` contains a NUL character; type the name again, e.g. {example!r}.")
    if len(value.encode()) > MAX_PATH_BYTES:
        raise DragKitInputError(f"`{input_name}` is {len(value.encode())} bytes long; the limit is {MAX_PATH_BYTES} "
                                f"(MAX_PATH_BYTES): use a shorter name.")
    return value


def confined_path(folder: str | Path, name: str, input_name: str, suffix: str = "", example: str = "my_file",
                  follow_links: bool = True) -> Path:
    """``folder / name`` (``suffix`` appended if missing), checked to stay inside ``folder``.

    Sub-folders are fine (``"dragkit/cat"``); ``..``, absolute paths, ``.``, NUL bytes and names over
    :data:`MAX_NAME_BYTES` per part are errors naming ``input_name``. With ``follow_links`` (for
    writes) symlinks are resolved too, and one (file or sub-folder) that points out of ``folder`` is
    an error; without it (for reading a model the user placed, which may well be a link to another
    drive) only the name is checked. The file need not exist.

    Returns:
        The resolved path (``follow_links``) or ``folder / name``.
    """
    name = _check_text(name, input_name, example)
    parts = re.split(r"[\\/]", name)  # both separators, whatever this system uses
    rooted = Path(name).is_absolute() or bool(PureWindowsPath(name).anchor)  # '/x', 'C:x', '\\\\server\\x'
    if rooted or parts[0] == "~" or any(part in ("", ".", "..") for part in parts):
        raise DragKitInputError(f"`{input_name}` must be a name inside '{folder}', got {name!r}; e.g. {example!r} "
                                f"(a sub-folder like 'dragkit/{example}' is fine, '..' and absolute paths are not).")
    if suffix and not name.lower().endswith(suffix):
        name += suffix
    for part in Path(name).parts:
        if len(part.encode()) > MAX_NAME_BYTES:
            raise DragKitInputError(f"`{input_name}` has a part of {len(part.encode())} bytes; file names are limited "
                                    f"to {MAX_NAME_BYTES} (MAX_NAME_BYTES): use a shorter name.")
    if not follow_links:
        return Path(folder) / name
    root = Path(folder).resolve()
    candidate = (root / name).resolve()
    if candidate == root or root not in candidate.parents:
        raise DragKitInputError(f"`{input_name}` {name!r} leads outside '{root}' (to '{candidate}'), through '..' "
                                "or a symlink; choose a plain name inside the folder.")
    return candidate


def checked_file(path: str | Path, input_name: str, suffixes: tuple[str, ...]) -> Path:
    """An explicit file path: it must exist, be a regular readable file and end in one of ``suffixes``."""
    text = _check_text(str(path), input_name, f"/path/to/file{suffixes[0]}")
    file = Path(text).expanduser()
    if not file.exists():
        raise DragKitModelError(f"`{input_name}`: no file at '{file}'; check the path.")
    if not file.is_file():
        raise DragKitInputError(f"`{input_name}` '{file}' is not a regular file (a folder or a device?); give the path "
                                f"of a {' or '.join(suffixes)} file.")
    if file.suffix.lower() not in suffixes:
        raise DragKitInputError(f"`{input_name}` '{file.name}' is not a {' or '.join(suffixes)} file; give one.")
    if not os.access(file, os.R_OK):
        raise DragKitInputError(f"`{input_name}` '{file}' cannot be read (permissions); fix them or copy the file.")
    return file


def check_writable_target(path: Path, input_name: str, overwrite: bool) -> None:
    """Raise, before any work, if writing ``path`` would fail or replace a file without ``overwrite``."""
    if path.is_dir():
        raise DragKitInputError(f"`{input_name}` names the folder '{path}'; give a file name.")
    if path.exists() and not overwrite:
        raise DragKitInputError(f"'{path}' already exists; choose another `{input_name}` or turn on overwrite.")
    parent = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise DragKitInputError(f"cannot write '{path}': '{parent}' is not a writable folder; choose another "
                                f"`{input_name}` or fix the folder's permissions.")


def atomic_write(path: Path, data: bytes, input_name: str = "path") -> Path:
    """Write ``data`` to ``path`` atomically: a new file beside it, flushed, then renamed over it.

    The file gets the permissions a plain new file gets (the process umask), unlike
    ``tempfile.mkstemp``'s private 0600, so other users and shared volumes can read it.
    """
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".dragkit_{uuid.uuid4().hex}.tmp"
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise DragKitInputError(f"cannot write to '{folder}' ({error.strerror or error}); choose another "
                                f"`{input_name}` or fix the folder's permissions.") from None
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        raise DragKitInputError(f"cannot write '{path}' ({error.strerror or error}); nothing was replaced. Check "
                                f"the disk space and `{input_name}`.") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
    return path
