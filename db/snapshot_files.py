"""A published snapshot's large frames as Arrow IPC files, one copy per machine.

A published snapshot never changes, so what the pages read of it (its orders as an `OrderIndex`,
its customers, its predictions, and the profiles and customer sample computed from them) is
written once into a cache directory
(`CUSTSEG_CACHE_DIR`, default `instance/cache`) and memory-mapped by every process that reads it:
the arrays and the columns the frames are made of are views of the file's pages, which the
kernel keeps once in its page cache for every gunicorn worker (and every app instance on the
machine that shares the directory). A worker's own memory holds only what it derives per
request.

Layout: `<dir>/v<FORMAT>/<database>/snapshot-<id>-<started>/<kind>-<size>-<crc32>.arrow`.
`<database>` is a hash of the database URL (without its password) and `<started>` the
snapshot's start time, so a database created again under the same URL (its snapshot ids start
at 1 again) never reads another's files; `FORMAT` changes whenever what a file holds changes.

The scheduler writes a snapshot's files right after a refit publishes it (the `files` job,
`db/exporter.py`); otherwise a file is built by the first process that needs it. Either way
under an exclusive lock (`fcntl.flock` on
`<kind>.lock` beside it): the others wait for it, then map it. It is written to a temporary file and
renamed into place, so a file under its final name was written whole; its name
carries its size and the CRC-32 of its bytes, which every process checks when it opens it. A
file that is shorter, longer or different (a disk error, a copy cut short, someone's editor) is
never served: it is removed under the lock and built again. Snapshots no longer published lose
their directory (`prune`, called by each worker's warm-up thread when it sees a new snapshot).
If the directory cannot be used (read-only, full), the frame is built in the process's memory
as before, with a warning.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import mmap
import os
import re
import shutil
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
from sqlalchemy import Engine

from db.models import Snapshot

log = logging.getLogger("custseg.snapshot_files")

# What a file holds: bump when an encoder or a frame's columns or dtypes change, so files written
# by an older release are not read (they are left for `prune` of their database's directory).
FORMAT = 1
CHUNK = 8 << 20  # bytes hashed at a time (zlib releases the GIL for each)
NAME = re.compile(r"^(?P<kind>[a-z0-9_.-]+?)-(?P<size>\d+)-(?P<crc>[0-9a-f]{8})\.arrow$")


class CorruptFile(ValueError):
    """A cache file that is not what its name says (size, checksum) or not an Arrow file."""


@dataclass(frozen=True)
class Codec[T]:
    """How a kind of value becomes an Arrow table and back (`decode` should not copy)."""

    encode: Callable[[T], pa.Table]
    decode: Callable[[pa.Table], T]


# --- frames ----------------------------------------------------------------------------------


def frame_table(frame: pd.DataFrame) -> pa.Table:
    # One chunk per column: text read through COPY arrives as Arrow arrays in chunks (16 for
    # 1M customers), which would make the file's record batches as many, and pandas would
    # concatenate them when reading: a copy of every column in every worker.
    return pa.Table.from_pandas(frame, preserve_index=False).combine_chunks()


def table_frame(table: pa.Table) -> pd.DataFrame:
    """The frame of `table` as `frame_table` got it. Numeric columns without missing values and
    strings are views of the table's buffers (pandas 3's `str` is Arrow-backed); nullable
    integers and categoricals copy their small codes and masks; days stay Arrow dates."""
    frame = table.to_pandas(
        split_blocks=True,  # one block per column: no consolidation into a copied 2-D block
        types_mapper={pa.date32(): pd.ArrowDtype(pa.date32())}.get,
    )
    # Columns of Python objects (predictions' `unscored_reason`, None when scored; a profile's
    # centroid value, None for features outside the model) would come back as `str` or floats,
    # missing values as NaN: give them back as they were.
    for column in (table.schema.pandas_metadata or {}).get("columns", []):
        name = column.get("name")
        if column.get("numpy_type") != "object" or name not in frame.columns:
            continue
        kind = table.schema.field(name).type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            values = table.column(name).to_numpy(zero_copy_only=False)
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind):
            values = np.empty(len(frame), dtype=object)
            values[:] = table.column(name).to_pylist()
        else:
            continue
        frame[name] = pd.Series(values, index=frame.index, dtype=object)
    return frame


FRAME = Codec(frame_table, table_frame)


# --- named flat arrays -----------------------------------------------------------------------


def arrays_table(arrays: dict[str, np.ndarray | pa.Array]) -> pa.Table:
    """Arrays of any lengths as one Arrow table of one row: a list column per array."""
    columns = {}
    for name, values in arrays.items():
        child = values if isinstance(values, pa.Array) else pa.array(values)
        offsets = pa.array([0, len(child)], type=pa.int64())
        columns[name] = pa.LargeListArray.from_arrays(offsets, child)
    return pa.table(columns)


def table_arrays(table: pa.Table) -> dict[str, np.ndarray | pa.Array]:
    """The arrays of `arrays_table`: numbers as read-only numpy views of the table's buffers,
    anything else (strings) as Arrow arrays."""
    out: dict[str, np.ndarray | pa.Array] = {}
    for name in table.column_names:
        [chunk] = table.column(name).chunks
        child = chunk.values
        if pa.types.is_integer(child.type) or pa.types.is_floating(child.type):
            out[name] = child.to_numpy(zero_copy_only=True)
        else:
            out[name] = child
    return out


# --- files -----------------------------------------------------------------------------------


def _crc_of(path: Path) -> tuple[int, int]:
    """Size and CRC-32 of a file, read through a memory map (its pages stay in the page cache,
    shared, for the map that serves it; nothing is copied into the process)."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if not size:
            return 0, 0
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            crc, view = 0, memoryview(mapped)
            try:
                for start in range(0, size, CHUNK):
                    crc = zlib.crc32(view[start : start + CHUNK], crc)
            finally:
                view.release()
    return size, crc


class _Counting:
    """A sink for Arrow's writer that keeps the size and CRC-32 of what passes through."""

    def __init__(self, fh: Any) -> None:
        self.fh, self.size, self.crc = fh, 0, 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.crc = zlib.crc32(view, self.crc)
        self.size += len(view)
        return int(self.fh.write(view))

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.fh.flush()

    def close(self) -> None:
        self.closed = True  # the caller closes the file after fsync


def database_key(engine: Engine) -> str:
    """A directory name for the database of `engine` (its URL without the password)."""
    url = engine.url.render_as_string(hide_password=True)
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def snapshot_dirname(snap: Snapshot) -> str:
    started = snap.started_at.strftime("%Y%m%dT%H%M%S%f") if snap.started_at else "unknown"
    return f"snapshot-{snap.id}-{started}"


def _kind_name(kind: str) -> str:
    return re.sub(r"[^a-z0-9_.]", ".", kind.lower())


class SnapshotFiles:
    """The cache directory of a machine: `load` a snapshot's kind from its file (building the
    file first if no process has), `prune` the files of snapshots no longer published."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.root = self.directory / f"v{FORMAT}"

    def database_dir(self, engine: Engine) -> Path:
        return self.root / database_key(engine)

    def snapshot_dir(self, engine: Engine, snap: Snapshot) -> Path:
        return self.database_dir(engine) / snapshot_dirname(snap)

    def path(self, engine: Engine, snap: Snapshot, kind: str) -> Path | None:
        """The file of `kind` under its final name, if there is one (checked or not)."""
        found = self._candidates(self.snapshot_dir(engine, snap), _kind_name(kind))
        return found[0] if found else None

    @staticmethod
    def _candidates(folder: Path, stem: str) -> list[Path]:
        try:
            names = os.listdir(folder)
        except OSError:  # not there yet, or not a usable directory (then `load` says so)
            return []
        found = []
        for name in names:
            m = NAME.match(name)
            if m and m["kind"] == stem:
                found.append(folder / name)
        return sorted(found, key=lambda p: p.stat().st_mtime_ns if p.exists() else 0, reverse=True)

    @staticmethod
    def _open(path: Path) -> pa.Table:
        """The table of a file under its final name, after checking its size and checksum
        (raises CorruptFile)."""
        m = NAME.match(path.name)
        assert m is not None
        expected_size, expected_crc = int(m["size"]), int(m["crc"], 16)
        if path.stat().st_size != expected_size:
            raise CorruptFile(f"{path.name}: {path.stat().st_size} bytes, not {expected_size}")
        size, crc = _crc_of(path)
        if size != expected_size or crc != expected_crc:
            raise CorruptFile(f"{path.name}: checksum {crc:08x}, not {expected_crc:08x}")
        try:
            return ipc.open_file(pa.memory_map(str(path), "r")).read_all()
        except (pa.ArrowInvalid, OSError) as exc:
            raise CorruptFile(f"{path.name}: {exc}") from exc

    def _serve(self, folder: Path, stem: str, remove_bad: bool) -> pa.Table | None:
        """The newest good file of `stem`; bad ones are removed only when `remove_bad` (under
        the lock: another process may be renaming a good one into place)."""
        for path in self._candidates(folder, stem):
            try:
                return self._open(path)
            except OSError:  # gone meanwhile (pruned, replaced) or unreadable: not served
                continue
            except CorruptFile as exc:
                if remove_bad:
                    log.warning("snapshot cache file removed: %s", exc)
                    path.unlink(missing_ok=True)
        return None

    def _write(self, folder: Path, stem: str, table: pa.Table) -> Path:
        tmp = folder / f".{stem}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with open(tmp, "wb") as fh:
                sink = _Counting(fh)
                with ipc.new_file(pa.PythonFile(sink, mode="w"), table.schema) as writer:
                    writer.write_table(table)
            # No fsync: a file the kernel had not written out when the machine stopped is
            # caught by its size and checksum when next opened, and built again.
            final = folder / f"{stem}-{sink.size}-{sink.crc:08x}.arrow"
            os.replace(tmp, final)
            return final
        finally:
            tmp.unlink(missing_ok=True)

    def load[T](
        self, engine: Engine, snap: Snapshot, kind: str, build: Callable[[], T], codec: Codec[T]
    ) -> T:
        """`kind` of `snap` from its file; the first process to need it builds it (`build`)
        and writes the file under the lock while the others wait for it."""
        folder, stem = self.snapshot_dir(engine, snap), _kind_name(kind)
        table = self._serve(folder, stem, remove_bad=False)
        if table is None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                lock = open(folder / f"{stem}.lock", "a+b")  # noqa: SIM115 - closed below
            except OSError:
                log.warning("snapshot cache directory unusable: %s", folder, exc_info=True)
                return build()
            with lock:  # closing it releases the lock, whatever happens
                fcntl.flock(lock, fcntl.LOCK_EX)
                table = self._serve(folder, stem, remove_bad=True)
                if table is None:
                    for stale in folder.glob(f".{stem}.*.tmp"):  # left by a builder that died
                        stale.unlink(missing_ok=True)
                    value = build()
                    try:
                        path = self._write(folder, stem, codec.encode(value))
                        table = self._open(path)
                    except (OSError, CorruptFile):
                        log.warning("snapshot cache file not written: %s", folder, exc_info=True)
                        return value
                    del value  # served from the file from now on, like everyone else's
                    if table.nbytes >= GIVE_BACK_BYTES:
                        _give_back_memory()
        return codec.decode(table)

    def prune(self, engine: Engine, keep: Iterable[Snapshot]) -> list[Path]:
        """Remove the directories of this database's snapshots that are not in `keep` (the
        published ones), up to the newest of them: a directory of a later snapshot belongs to
        one being published now. Returns what was removed. Files mapped by a process stay
        readable by it until it lets them go (POSIX)."""
        kept = list(keep)
        if not kept:
            return []
        names = {snapshot_dirname(s) for s in kept}
        newest = max(s.id for s in kept)
        removed = []
        try:
            children = list(self.database_dir(engine).iterdir())
        except FileNotFoundError:
            return []
        for child in children:
            m = re.match(r"^snapshot-(\d+)-", child.name)
            if child.is_dir() and m and child.name not in names and int(m[1]) <= newest:
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child)
        return removed


# Below this size a file's build left little to give back, and a full garbage collection of
# the process (tenths of a second with the app's modules loaded) costs more than it returns.
GIVE_BACK_BYTES = 16 * 2**20


def _give_back_memory() -> None:
    """Return to the system what building a file took (the frames read from the database, the
    index's temporaries: hundreds of MB at 1M customers), which the allocators would otherwise
    keep in this process: Arrow's pool, and glibc's heap (`malloc_trim`)."""
    import ctypes
    import gc

    gc.collect()
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
