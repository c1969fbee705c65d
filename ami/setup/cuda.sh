#!/usr/bin/env bash
# Set up a GPU machine (the DL base AMI already has the NVIDIA driver): a Python venv with
# TensorFlow's CUDA wheels and PyTensor + JAX for CUDA 12.
# usage: cuda.sh PYTHON VENV [PIP_REQUIREMENT...]   (common.sh's functions come first)
# Idempotent: a second run on the same machine only re-checks what is installed.
set -euo pipefail
python_bin="${1:?usage: cuda.sh PYTHON VENV [PIP_REQUIREMENT...]}"
venv="${2:?usage: cuda.sh PYTHON VENV [PIP_REQUIREMENT...]}"
shift 2
if [ "$#" -eq 0 ]; then set -- "tensorflow[and-cuda]>=2.16" "pytensor>=3.0" "numba>=0.59" "threadpoolctl>=3.1" "scipy-openblas32>=0.3.31" "jax[cuda12]"; fi

# First, and clearly: without a working driver nothing below can help, so fail in seconds
# rather than after gigabytes of CUDA wheels.
if ! nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; then
  echo "orchestrate setup: no working NVIDIA driver here (nvidia-smi failed). A cuda image" \
    "spec needs a GPU instance type launched from a GPU image such as the Deep Learning Base" \
    "OSS AMI." >&2
  exit 3
fi

python_env "$python_bin" "$venv" "$@"
# The frameworks these requirements bring (all, unless a staged setup asked for one), each
# checked on the GPU.
# shellcheck disable=SC2046
"$venv/bin/python" - $(known_modules "$@") <<'PY'
import importlib
import sys

wanted = set(sys.argv[1:])
seen = []
if "tensorflow" in wanted:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    seen.append(f"tensorflow {tf.__version__} gpus {len(gpus)}")
    if not gpus:
        raise SystemExit("tensorflow sees no GPU after setup")
if "jax" in wanted:
    import jax

    seen.append(f"jax {jax.devices()}")
    if jax.default_backend() != "gpu":
        raise SystemExit("jax sees no GPU after setup: PyTensor's JAX mode would run on the CPU")
for name in sorted(wanted - {"tensorflow", "jax"}):
    seen.append(f"{name} {getattr(importlib.import_module(name), '__version__', '?')}")
print("setup ok:", " | ".join(seen))
PY
