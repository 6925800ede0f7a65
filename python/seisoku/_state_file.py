"""Atomic files and nested-state archives (checkpoints) without pickle.

A state is a tree of dicts, lists and tuples whose leaves are NumPy/CuPy arrays, numbers,
strings, booleans or None. save_state writes it as one .npz archive: every array as its
own entry and the rest of the tree as JSON (entry "__state__.json"), so loading never runs
pickle. Files are written atomically: to a temporary file in the same folder, flushed and
fsynced, then renamed over the target, so a crash mid-write leaves the old file (or none),
never a broken one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from ._array import is_cuda_array

_META = "__state__.json"
_ARRAY_TAG = "__array__"
FORMAT_VERSION = 1


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file next to `path`; on success fsync it and rename it over `path`.

    On any exception (KeyboardInterrupt included) the temporary file is removed and `path`
    is left as it was.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        newline = "" if "b" not in mode else None
        with os.fdopen(fd, mode, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where possible
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _pack(obj: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    if isinstance(obj, np.ndarray) or is_cuda_array(obj):
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(obj.get() if is_cuda_array(obj) else obj)
        return {_ARRAY_TAG: key}
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise ValueError(f"[save_state] {where}: keys must be str or int, got {k!r}")
            out[str(k)] = _pack(v, arrays, f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [_pack(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    if obj is None or isinstance(obj, str):
        return obj
    raise ValueError(f"[save_state] {where}: cannot store a {type(obj).__name__}")


def _unpack(obj: Any, arrays: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_ARRAY_TAG}:
            return arrays[obj[_ARRAY_TAG]]
        return {k: _unpack(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack(v, arrays) for v in obj]
    return obj


def save_state(path: str | os.PathLike[str], state: dict[str, Any], kind: str) -> None:
    """Write a nested state atomically as an .npz archive tagged with `kind`."""
    arrays: dict[str, np.ndarray] = {}
    tree = _pack(state, arrays, "state")
    meta = json.dumps({"kind": kind, "version": FORMAT_VERSION, "state": tree}, allow_nan=True)
    arrays[_META] = np.frombuffer(meta.encode(), dtype=np.uint8)
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def load_state(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Read a state written by save_state; anything else (a missing, truncated or foreign
    file, or one of another kind) is a ValueError naming the file."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":
                raise ValueError("not an .npz archive")
            f.seek(0)
            archive = np.load(f, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile) or _META not in archive.files:
                raise ValueError("no state record in it")
            with archive:
                meta = json.loads(bytes(archive[_META]).decode())
                arrays = {k: archive[k] for k in archive.files if k != _META}
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, UnicodeError) as e:
        raise ValueError(f"{path} is not a readable seisoku {kind} file: {e}") from None
    if not isinstance(meta, dict) or meta.get("kind") != kind:
        found = meta.get("kind") if isinstance(meta, dict) else None
        raise ValueError(f"{path} is not a seisoku {kind} file (it holds {found!r})")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: {kind} format version {meta.get('version')!r}, this seisoku reads "
            f"{FORMAT_VERSION}"
        )
    try:
        return _unpack(meta["state"], arrays)
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a readable seisoku {kind} file: {e}") from None
