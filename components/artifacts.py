"""Our own artifact types.

Kubeflow Pipelines v2 carries a custom artifact type as a schema title
`<module>.<Class>` (module: 3-21 lower-case characters, no dots) and imports the
class back from that title inside the task's container. So each TYPE_NAME here
is also the class's import path through `components/__init__.py`.
"""
from tfx import types


class IngestReport(types.Artifact):
    """Class list, files per class, skipped files and why (JSON files)."""

    TYPE_NAME = "components.IngestReport"
