"""ports.Store on a directory: atomic create-only writes and etag compare-and-swap.

Create-only uses link(2) (fails if the name exists, atomically, across processes); etag writes
hold an flock on the store while comparing and replacing. Etags are content hashes plus the
file's inode and modification time (each write is a new file), so a rewrite is always seen.

Keys are blob-style names (`check_key`, the same rule as the blob adapter). One thing a folder
cannot do that blob storage can: hold both "a/b" and "a/b/c" — writing the second is a
PlatformError here (not transient), so keep keys that are folders of other keys apart.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from functions.ports import Conflict, PlatformError, check_key

class DirectoryStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.root / ".lock"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    @staticmethod
    def _etag(data: bytes, path: Path) -> str:
        # inode + mtime, not ctime: every write lands as a new file (rename or link), so the inode
        # tells rewrites apart (an ABA rewrite with other content changes the hash too), while a
        # create-only write's removal of its temporary name changes the ctime but not these — with
        # ctime, a reader racing that removal got an etag the unchanged object no longer had
        stat = path.stat()
        return hashlib.sha256(data).hexdigest()[:16] + f"-{stat.st_ino:x}-{stat.st_mtime_ns:x}"

    def get(self, key: str) -> tuple[bytes, str] | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
            return data, self._etag(data, path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):  # a folder is not a key
            return None
        except OSError as exc:
            raise PlatformError(f"store read {key}: {exc}", transient=True) from exc

    def put(self, key: str, data: bytes, *, if_absent: bool = False, etag: str | None = None) -> str:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise PlatformError(f"{key}: a parent folder is itself a key (a directory cannot hold both)") from None
        if path.is_dir():
            raise PlatformError(f"{key} is a folder of other keys (a directory cannot hold both)")
        tmp = self._temp(path, data)
        try:
            if if_absent:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise Conflict(f"{key} already exists") from None
                Path(tmp).unlink()
                tmp = None
                return self._etag(data, path)
            with self._locked():
                if etag is not None:
                    current = self.get(key)
                    if current is None or current[1] != etag:
                        raise Conflict(f"{key} changed since it was read")
                os.replace(tmp, path)
                tmp = None
                return self._etag(data, path)
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)

    def list(self, prefix: str) -> list[str]:
        if prefix:
            check_key(prefix + "x")  # a prefix is valid when some key could start with it
        base = self.root
        out = []
        start = self.root / prefix if not prefix or prefix.endswith("/") else (self.root / prefix).parent
        if not start.exists():
            return []
        for dirpath, _, files in os.walk(start):
            for name in files:
                if name.startswith("."):  # the lock and temp files; keys never start with '.'
                    continue
                key = str(Path(dirpath, name).relative_to(base))
                if key.startswith(prefix):
                    out.append(key)
        return sorted(out)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except (NotADirectoryError, IsADirectoryError):  # a folder is not a key: nothing to delete
            pass

    @staticmethod
    def _temp(path: Path, data: bytes) -> str:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        # No fsync: what the local platform needs is atomicity between processes (a reader never
        # sees half an object, create-only and compare-and-swap hold), which link/rename give. It
        # does not promise durability across a power cut — its inference servers would not survive
        # one either — and an fsync per write made every event hand-off wait on the disk.
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return tmp

    @contextmanager
    def _locked(self):
        with open(self._lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
