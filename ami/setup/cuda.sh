#!/usr/bin/env bash
# Set up a GPU machine (the DL base AMI already has the NVIDIA driver): a Python venv with
# TensorFlow's CUDA wheels and PyTensor + JAX for CUDA 12.
# usage: cuda.sh PYTHON VENV [PIP_REQUIREMENT...]
# Idempotent: a second run on the same machine only re-checks what is installed.
set -euo pipefail
python_bin="${1:?usage: cuda.sh PYTHON VENV [PIP_REQUIREMENT...]}"
venv="${2:?usage: cuda.sh PYTHON VENV [PIP_REQUIREMENT...]}"
shift 2
if [ "$#" -eq 0 ]; then set -- "tensorflow[and-cuda]>=2.16" "pytensor>=3.0" "jax[cuda12]"; fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# cloud-init and unattended-upgrades hold the dpkg lock on first boot: wait rather than fail.
apt_get() { $SUDO apt-get -o DPkg::Lock::Timeout=600 -q "$@"; }
apt_get update
apt_get install -y --no-install-recommends "$python_bin" "$python_bin-venv" python3-pip

# Fail early and clearly if the image has no working driver: nothing below can fix that.
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader

$SUDO mkdir -p "$(dirname "$venv")"
if [ ! -x "$venv/bin/python" ]; then $SUDO "$python_bin" -m venv "$venv"; fi
$SUDO "$venv/bin/python" -m pip install -q --upgrade pip
$SUDO "$venv/bin/python" -m pip install -q "$@"
"$venv/bin/python" - <<'PY'
import jax
import pytensor
import tensorflow as tf

gpus = tf.config.list_physical_devices("GPU")
print("setup ok: tensorflow", tf.__version__, "gpus", len(gpus), "| jax", jax.devices(), "| pytensor", pytensor.__version__)
if not gpus:
    raise SystemExit("tensorflow sees no GPU after setup")
PY
