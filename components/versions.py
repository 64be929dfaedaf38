"""Integer-named version folders, as TF Serving and the edge store lay them out.

Staging folders (`.partial-*`) and anything else without an integer name are
not versions. Local folders are listed with os (no TensorFlow: `imagepipe
serving`, `promote` and `rollback` stay fast); object-store URIs through TFX's file I/O.
"""
import os


def existing_versions(base_directory: str) -> list[int]:
    base_directory = str(base_directory)
    if "://" in base_directory:
        from tfx.dsl.io import fileio

        if not fileio.isdir(base_directory):
            return []
        names = [name.rstrip("/") for name in fileio.listdir(base_directory)]
    else:
        if not os.path.isdir(base_directory):
            return []
        names = os.listdir(base_directory)
    return sorted(int(name) for name in names if name.isdigit())
