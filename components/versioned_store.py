"""A store of integer-numbered versions, as TF Serving and the edge store lay them out: one home for
how a version is published, found again, and numbered.

    <base>/<version>/...          a version: whole, or not visible at all
    <base>/<version>/<record>     what was published and from which model (JSON), written last

A version is assembled in a staging folder (`.partial-<version>-<pid>`: not an integer, so TF Serving
and every reader ignore it), its marker file (the one readers wait for: `saved_model.pb` for TF
Serving) and the record are written last, then the folder is renamed into place. A version without
its record is not a whole version: not found, not listed, never rolled back to.

Small files that readers poll (models.config, `latest`) are replaced atomically with
`write_atomically`. Local paths use os; object-store URIs (gs://, s3://) go through TFX's file I/O.
"""
from __future__ import annotations

import json
import os
import posixpath
import shutil
from typing import Any, Callable, Dict, List, Optional


def is_remote(path: str) -> bool:
    """An object-store URI (gs://, s3://): no rename, no lock; reached through TFX's file I/O."""
    return "://" in str(path)


def _fileio():
    from tfx.dsl.io import fileio

    return fileio


def join(base: str, *parts: str) -> str:
    """`os.path.join` that keeps an object-store URI's '//' (pathlib would fold it)."""
    base = str(base)
    return posixpath.join(base, *parts) if is_remote(base) else os.path.join(base, *parts)


def parent(path: str) -> str:
    path = str(path).rstrip("/")
    return posixpath.dirname(path) if is_remote(path) else os.path.dirname(path)


def exists(path: str) -> bool:
    return _fileio().exists(str(path)) if is_remote(path) else os.path.exists(path)


def makedirs(path: str) -> None:
    if is_remote(path):
        _fileio().makedirs(str(path))
    else:
        os.makedirs(path, exist_ok=True)


def read_text(path: str) -> str:
    if is_remote(path):
        with _fileio().open(str(path)) as f:
            data = f.read()
        return data.decode("utf-8") if isinstance(data, bytes) else data
    with open(path, encoding="utf-8") as f:
        return f.read()


def write_atomically(path: str, text: str) -> None:
    """Replaces `path` with `text` so that a reader sees the old file or the new one, never half of one."""
    path = str(path)
    if is_remote(path):  # an object store replaces an object whole on upload
        with _fileio().open(path, "w") as f:
            f.write(text)
        return
    temporary = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}")
    with open(temporary, "w") as f:
        f.write(text)
    os.replace(temporary, path)


class VersionedStore:
    def __init__(self, base: str, record_name: str):
        self.base = str(base).rstrip("/")
        self.record_name = record_name

    def _path(self, *parts: str) -> str:
        return join(self.base, *parts)

    def _listdir(self) -> List[str]:
        if is_remote(self.base):
            fileio = _fileio()
            return [n.rstrip("/") for n in fileio.listdir(self.base)] if fileio.isdir(self.base) else []
        return os.listdir(self.base) if os.path.isdir(self.base) else []

    def numbered(self) -> List[int]:
        """Every integer-named folder, whole or not (a version number is never reused)."""
        return sorted(int(name) for name in self._listdir() if name.isdigit())

    def versions(self) -> List[int]:
        """Whole versions: those with their record."""
        return [v for v in self.numbered() if exists(self._path(str(v), self.record_name))]

    def record(self, version: int) -> Dict[str, Any]:
        return json.loads(read_text(self._path(str(version), self.record_name)))

    def find(self, key: str, value: Any) -> Optional[int]:
        """The version whose record has `key` == `value` (the same model pushed before), or None."""
        for version in self.versions():
            if self.record(version).get(key) == value:
                return version
        return None

    def next_version(self) -> int:
        numbered = self.numbered()
        return numbered[-1] + 1 if numbered else 1

    def publish(self, version: int, write: Callable[[str], None], record: Dict[str, Any],
                last: Optional[str] = None) -> str:
        """Writes a version whole: `write(staging)` puts the files in; the file named `last` (written by
        `write` into `<staging>/.last/<last>`) and then the record go in after everything else; then the
        staging folder becomes `<base>/<version>`. Refuses to overwrite a version."""
        destination = self._path(str(version))
        if exists(destination):
            raise FileExistsError(f"{destination} exists; versions are never overwritten")
        if is_remote(self.base):
            return self._publish_remote(destination, write, record, last)
        staging = self._path(f".partial-{version}-{os.getpid()}")
        os.makedirs(self.base, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
        write(staging)
        held = os.path.join(staging, ".last")
        if last:
            os.replace(os.path.join(held, last), os.path.join(staging, last))
            os.rmdir(held)
        with open(os.path.join(staging, self.record_name), "w") as f:
            json.dump(record, f, indent=2)
        os.rename(staging, destination)
        return destination

    def _publish_remote(self, destination: str, write, record, last) -> str:
        """Object stores have no rename: stage locally, copy file by file into place with `last` and the
        record copied last; until the record lands the version is not whole (versions() skips it)."""
        import tempfile

        fileio = _fileio()
        with tempfile.TemporaryDirectory(prefix="imagepipe-publish-") as local:
            write(local)
            held = os.path.join(local, ".last")
            copies = sorted((os.path.join(root, name), os.path.relpath(os.path.join(root, name), local))
                            for root, _, names in os.walk(local) if not root.startswith(held) for name in names)
            if last:
                copies.append((os.path.join(held, last), last))
            for source, relative in copies:
                target = posixpath.join(destination, relative.replace(os.sep, "/"))
                fileio.makedirs(posixpath.dirname(target))
                fileio.copy(source, target, overwrite=True)
        record_path = posixpath.join(destination, self.record_name)
        fileio.makedirs(posixpath.dirname(record_path))
        with fileio.open(record_path, "w") as f:
            f.write(json.dumps(record, indent=2))
        return destination
