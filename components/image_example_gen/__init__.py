# Lazy, as in components/__init__.py: the Beam workers import only decode.py.


def __getattr__(name: str):
    if name in ("ImageExampleGen", "IngestReport"):
        from components.image_example_gen import component

        return getattr(component, name)
    raise AttributeError(f"module 'components.image_example_gen' has no attribute {name!r}")
