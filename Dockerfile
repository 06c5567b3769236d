# replica:latest, the one image every config in cluster/configs runs: Ray head and workers (cluster launcher,
# KubeRay RayCluster / RayJob / RayService), the drivers of `replica submit` jobs and the Serve application.
#
#   docker build -t replica:latest .
#
# Push it to a registry your nodes pull from and use that name in cluster/configs/ (tests/cluster/test_configs.py
# checks every config names the image this file builds).
#
# Why a CUDA *devel* base rather than a Ray image: the pinned torch 2.11 wheels are built for CUDA 13 (cu130), and
# gsplat JIT-compiles its kernels against torch with nvcc on first use, so the image carries a CUDA 13 toolkit of
# the same major version; Python 3.11 (what the stack is pinned and tested on) comes from uv's standalone builds,
# which include the headers that build needs.
#
# No ENTRYPOINT or CMD: the cluster launcher and KubeRay start Ray with their own commands (`ray start …`), and
# replica commands run as Ray Jobs on it (`replica submit`, a RayJob's entrypoint).

ARG CUDA_IMAGE=nvidia/cuda:13.0.0-devel-ubuntu24.04

FROM ghcr.io/astral-sh/uv:0.8.14 AS uv

FROM ${CUDA_IMAGE}
COPY --from=uv /uv /usr/local/bin/uv

# flite and espeak-ng: the voice pool's extra TTS engines; libgl1/libglib2.0-0: mediapipe's OpenCV; wget: KubeRay's
# health probes; git: Ray's runtime envs can fetch from it.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      espeak-ng flite libgl1 libglib2.0-0 wget git ca-certificates \
 && rm -rf /var/lib/apt/lists/*

ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RAY_USAGE_STATS_ENABLED=0
RUN uv venv --python 3.11 /opt/venv

WORKDIR /opt/replica
# The pinned stack first, from pyproject.toml alone, so a code change rebuilds only the layer below.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && uv pip install --no-cache -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The package itself (not editable: a job's uploaded working directory comes first on its PYTHONPATH anyway).
COPY . .
RUN uv pip install --no-cache --no-deps . \
 && replica --help > /dev/null
