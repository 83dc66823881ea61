# SPDX-License-Identifier: Apache-2.0
# facecamo on NVIDIA's Triton image (GPU, every backend), under the supervised launcher that `make serve` runs:
# a model process that dies is restarted, readiness (/v2/models/facecamo/ready) is false meanwhile.
#
#   make export FLAVOUR=onnxruntime            # (or FLAVOUR=tensorrt, built on the serving GPU) -> model_repository/
#   docker build -t facecamo-triton .
#   docker run --rm --init --gpus all --shm-size=1g -p 8000:8000 -p 8001:8001 -p 8002:8002 facecamo-triton
#
# Everything is installed at build time: the container needs no internet when it starts. The image carries the
# model repository (/models); `-v "$PWD/model_repository:/models:ro"` serves another one without a rebuild.
# README.md, "Deploying in NVIDIA's Triton container", says what each port and setting is for.
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3
FROM ${TRITON_IMAGE}

WORKDIR /opt/facecamo
# The frame pipeline (the python model `facecamo`) needs numpy < 2, OpenCV and dlib in the container's Python.
COPY requirements/shared.txt requirements/shared.txt
RUN python3 -m pip install --no-cache-dir -r requirements/shared.txt

# The launcher: the serving/ package and the torch-free package it reads the tensor names from.
COPY facecamo/ facecamo/
COPY serving/ serving/
COPY model_repository/ /models/
# The python flavour runs the networks on ONNX Runtime inside python models (the CPU-only server of `make serve`);
# in this image they belong on Triton's own backends: refuse to build an image that would not load.
RUN test -f /models/facecamo/config.pbtxt || { echo "model_repository/ is empty: run make export FLAVOUR=onnxruntime first" >&2; exit 1; }; \
    if grep -qs 'backend: "python"' /models/generator/config.pbtxt; then \
      echo "model_repository/ is the python flavour: run make export FLAVOUR=onnxruntime (or tensorrt) before docker build" >&2; exit 1; fi

EXPOSE 8000 8001 8002
# Readiness is the public model's, not the server's: /v2/health/ready stays green while a model process is dead.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s \
  CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/models/facecamo/ready', timeout=4)"

# Inside the container every port listens on 0.0.0.0 (the published ports are the boundary). Arguments after the
# image name are appended (the last of an option wins): gRPC travels in clear unless TLS is given, e.g.
# `... facecamo-triton --grpc-server-cert /certs/server.crt --grpc-server-key /certs/server.key` with -v certs:/certs:ro.
# --init: a process reaps what tritonserver leaves (the launcher itself would be PID 1 and reaps only its own).
ENTRYPOINT ["python3", "-m", "serving", "--tritonserver", "/opt/tritonserver/bin/tritonserver", \
            "--repository", "/models", "--grpc-address", "0.0.0.0", "--http-address", "0.0.0.0", "--metrics-address", "0.0.0.0"]
