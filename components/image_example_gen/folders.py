"""The data root's class folders, read without TensorFlow: `imagepipe validate` checks them too.

<root>/<class_name>/<image>; hidden entries (`.x`, `_x`) are ignored; the
unlabelled folder is never a class. Local paths are read with os, object-store
URIs (gs://, s3://) through TFX's file I/O.
"""
from __future__ import annotations

import os
import posixpath
from typing import Dict, List, NamedTuple


def _listdir(path: str) -> List[str]:
    if "://" in path:
        from tfx.dsl.io import fileio

        return [name.rstrip("/") for name in fileio.listdir(path)]
    return os.listdir(path)


def _isdir(path: str) -> bool:
    if "://" in path:
        from tfx.dsl.io import fileio

        return fileio.isdir(path)
    return os.path.isdir(path)


class ImageFolderError(ValueError):
    """The data root has no usable class folders."""


class ClassFolders(NamedTuple):
    classes: List[str]                   # sorted class folder names with at least one file
    empty: List[str]                     # class folders with no file
    files_by_class: Dict[str, List[str]]  # paths relative to the scanned root, '/'-separated
    ignored: List[Dict[str, str]]        # {"file", "reason"}: what is not read, and why (never silently)


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("_")


def _not_utf8(name: str) -> bool:
    """os.listdir hands undecodable bytes back as surrogates: such a name cannot be a label or a feature."""
    try:
        name.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _shown(name: str) -> str:
    """The name's bytes as readable text: caf\\xe9 for a Latin-1 'café'."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def scan_class_folders(root: str, unlabeled_dir: str) -> ClassFolders:
    """The class folders below `root` and their files."""
    if not _isdir(root):
        raise ImageFolderError(f"data root {root} is not a folder")
    try:
        entries = sorted(_listdir(root))
    except OSError as exc:
        raise ImageFolderError(f"data root {root} cannot be read ({exc.strerror})") from None
    files_by_class: Dict[str, List[str]] = {}
    ignored: List[Dict[str, str]] = []
    for entry in entries:
        name = entry.rstrip("/")
        folder = posixpath.join(root, name)
        if _is_hidden(name) or not _isdir(folder):
            continue
        if _not_utf8(name):
            ignored.append({"file": _shown(name), "reason": "folder name is not UTF-8: it cannot be a class name; "
                                                          "fix: rename it"})
            continue
        try:
            names = sorted(f.rstrip("/") for f in _listdir(folder) if not _is_hidden(f))
        except OSError as exc:
            ignored.append({"file": name, "reason": f"class folder cannot be read ({exc.strerror})"})
            continue
        files_by_class[name] = []
        for file_name in names:
            path = posixpath.join(name, file_name)
            if _not_utf8(file_name):
                ignored.append({"file": _shown(path), "reason": "file name is not UTF-8; fix: rename it"})
            elif _isdir(posixpath.join(folder, file_name)):
                ignored.append({"file": path, "reason": "a folder inside a class folder is not read; fix: move "
                                                      "its images up into the class folder"})
            else:
                files_by_class[name].append(path)
    unlabeled = files_by_class.pop(unlabeled_dir, [])
    classes = sorted(name for name, files in files_by_class.items() if files)
    empty = sorted(name for name, files in files_by_class.items() if not files)
    if not classes:
        raise ImageFolderError(
            f"data root {root} has no class folder with images; expected <root>/<class_name>/<image> "
            f"(found {len(entries)} entries: {', '.join(_shown(e) for e in entries[:10]) or 'none'})"
        )
    if unlabeled:
        files_by_class[unlabeled_dir] = unlabeled
    return ClassFolders(classes, empty, files_by_class, ignored)


def scan_span_folders(input_base: str, folders: List[str], unlabeled_dir: str, allow_class_changes: bool = False
                      ) -> ClassFolders:
    """scan_class_folders over one or more span folders below `input_base`
    ('' = input_base itself), merged; file paths relative to `input_base`.

    Every span must have the same classes, because a label index must keep
    its meaning; with `allow_class_changes` the classes are the union."""
    classes: List[str] = []
    empty: set = set()
    files_by_class: Dict[str, List[str]] = {}
    ignored: List[Dict[str, str]] = []
    for folder in folders:
        span = scan_class_folders(posixpath.join(input_base, folder), unlabeled_dir)
        if classes and span.classes != classes and not allow_class_changes:
            added, removed = sorted(set(span.classes) - set(classes)), sorted(set(classes) - set(span.classes))
            raise ImageFolderError(
                f"the class folders changed between data spans {folders[0]} and {folder} "
                f"(added: {', '.join(added) or 'none'}; removed: {', '.join(removed) or 'none'}): label indices "
                "would change meaning; fix: give every span the same class folders, or set "
                "data.allow_class_changes: true to train a model on the new class list"
            )
        classes = sorted(set(classes) | set(span.classes))
        empty.update(span.empty)
        for name, files in span.files_by_class.items():
            files_by_class.setdefault(name, []).extend(posixpath.join(folder, f) for f in files)
        ignored.extend(dict(item, file=posixpath.join(folder, item["file"])) for item in span.ignored)
    return ClassFolders(classes, sorted(empty - set(classes)), files_by_class, ignored)
