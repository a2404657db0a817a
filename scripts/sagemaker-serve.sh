#!/usr/bin/env bash
# `serve` in the container image (Dockerfile.cuda installs it as /opt/hfkit/bin/serve): what
# SageMaker runs as `docker run IMAGE serve`. The model is where SageMaker unpacks model.tar.gz
# (/opt/ml/model; SM_MODEL_DIR overrides). The port is SAGEMAKER_BIND_TO_PORT, else HFKIT_PORT,
# else 8080: passed as --port because hf-predict alone would let the image's HFKIT_PORT=8080 win
# over the port SageMaker assigns. Inside a container the server must listen on every interface
# to be reachable through the published port; HFKIT_HOST overrides it. `exec`, so that SIGTERM
# (from tini) reaches hf-predict, which drains and exits 0.
# Extra arguments go to hf-predict (e.g. --max-batch-size 64 --api-key-file /run/secrets/key).
set -euo pipefail
exec hf-predict --model "${SM_MODEL_DIR:-/opt/ml/model}" --serve --host "${HFKIT_HOST:-0.0.0.0}" \
  --port "${SAGEMAKER_BIND_TO_PORT:-${HFKIT_PORT:-8080}}" "$@"
