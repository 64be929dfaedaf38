# The image every task of the compiled Kubeflow pipeline runs (`imagepipe compile --target kubeflow`).
# Same interpreter, same locked packages as .venv: Debian 12 has glibc 2.36, which the locked wheels need.
#   docker build -t <registry>/imagepipe:<tag> .   then set kubeflow.image in the spec to that tag.
FROM python:3.10-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_CONFIG_FILE=/dev/null \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2

# The project lives here; imagepipe/kubeflow.py (IMAGE_PROJECT_DIR) points the schema file at it.
WORKDIR /opt/imagepipe

# The lock alone decides: hashes checked, no resolver, no extra index.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock

# The trainer modules, preprocessing function and components the tasks import.
COPY pyproject.toml README.md ./
COPY imagepipe ./imagepipe
COPY pipelines ./pipelines
COPY components ./components
COPY trainer_modules ./trainer_modules
COPY schemas ./schemas
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e .
ENV PYTHONPATH=/opt/imagepipe

# Kubeflow sets each task's command (python -m tfx.orchestration.kubeflow.v2...); this is for trying the image.
CMD ["imagepipe", "--help"]
