"""Integer-named version folders, as TF Serving and the edge store lay them out.

Staging folders (`.partial-*`) and anything else without an integer name are
not versions.
"""
from tfx.dsl.io import fileio


def existing_versions(base_directory: str) -> list[int]:
    if not fileio.isdir(base_directory):
        return []
    names = (name.rstrip("/") for name in fileio.listdir(base_directory))
    return sorted(int(name) for name in names if name.isdigit())
