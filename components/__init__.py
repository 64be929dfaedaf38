"""imagepipe's own TFX components.

Imports are lazy (PEP 562): ImageExampleGen's Beam workers import
components.image_example_gen.decode, and importing this package must not pull
TFX and TensorFlow into every worker (bench/ingest.py: about 6 s each).
"""


def __getattr__(name: str):
    if name == "IngestReport":  # Kubeflow imports it as components.IngestReport
        from components.artifacts import IngestReport

        return IngestReport
    raise AttributeError(f"module 'components' has no attribute {name!r}")
