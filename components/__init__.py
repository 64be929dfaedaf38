from components.artifacts import IngestReport  # noqa: F401  (Kubeflow imports it as components.IngestReport)
