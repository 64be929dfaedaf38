"""The data root's class folders, read without TensorFlow: `imagepipe validate` checks them too.

<root>/<class_name>/<image>; hidden entries (`.x`, `_x`) are ignored; the
unlabelled folder is never a class. Local paths are read with os, object-store
URIs (gs://, s3://) through TFX's file I/O.
"""
from __future__ import annotations

import os
import posixpath
from typing import Dict, List, Tuple


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


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("_")


def scan_class_folders(root: str, unlabeled_dir: str) -> Tuple[List[str], List[str], Dict[str, List[str]]]:
    """Lists (classes, empty_classes, files per class) below `root`.

    Files are paths relative to `root`, with '/' separators.
    """
    if not _isdir(root):
        raise ImageFolderError(f"data root {root} is not a folder")
    entries = sorted(_listdir(root))
    files_by_class: Dict[str, List[str]] = {}
    for entry in entries:
        name = entry.rstrip("/")
        folder = posixpath.join(root, name)
        if _is_hidden(name) or not _isdir(folder):
            continue
        files_by_class[name] = sorted(
            posixpath.join(name, f.rstrip("/"))
            for f in _listdir(folder)
            if not _is_hidden(f) and not _isdir(posixpath.join(folder, f))
        )
    unlabeled = files_by_class.pop(unlabeled_dir, [])
    classes = sorted(name for name, files in files_by_class.items() if files)
    empty = sorted(name for name, files in files_by_class.items() if not files)
    if not classes:
        raise ImageFolderError(
            f"data root {root} has no class folder with images; expected <root>/<class_name>/<image> "
            f"(found {len(entries)} entries: {', '.join(entries[:10]) or 'none'})"
        )
    if unlabeled:
        files_by_class[unlabeled_dir] = unlabeled
    return classes, empty, files_by_class


def scan_span_folders(input_base: str, folders: List[str], unlabeled_dir: str, allow_class_changes: bool = False
                      ) -> Tuple[List[str], List[str], Dict[str, List[str]]]:
    """scan_class_folders over one or more span folders below `input_base`
    ('' = input_base itself), merged; file paths relative to `input_base`.

    Every span must have the same classes, because a label index must keep
    its meaning; with `allow_class_changes` the classes are the union."""
    classes: List[str] = []
    empty: set = set()
    files_by_class: Dict[str, List[str]] = {}
    for folder in folders:
        span_classes, span_empty, span_files = scan_class_folders(posixpath.join(input_base, folder), unlabeled_dir)
        if classes and span_classes != classes and not allow_class_changes:
            added, removed = sorted(set(span_classes) - set(classes)), sorted(set(classes) - set(span_classes))
            raise ImageFolderError(
                f"the class folders changed between data spans {folders[0]} and {folder} "
                f"(added: {', '.join(added) or 'none'}; removed: {', '.join(removed) or 'none'}): label indices "
                "would change meaning; fix: give every span the same class folders, or set "
                "data.allow_class_changes: true to train a model on the new class list"
            )
        classes = sorted(set(classes) | set(span_classes))
        empty.update(span_empty)
        for name, files in span_files.items():
            files_by_class.setdefault(name, []).extend(posixpath.join(folder, f) for f in files)
    return classes, sorted(empty - set(classes)), files_by_class
