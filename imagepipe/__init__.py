"""imagepipe's runtime: the `imagepipe` command (cli.py), the spec model (spec.py), spec -> TFX pipeline
(pipeline.py), running it (run.py), what a run did (results.py, describe.py, report.py), Kubeflow
(kubeflow.py, kubeflow_local.py), scheduling (schedule.py), notifications (notify.py), shipped data
(datasets.py). The specs themselves are data, in pipelines/."""
