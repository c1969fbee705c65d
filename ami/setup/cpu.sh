#!/usr/bin/env bash
# Set up a CPU machine: a Python venv with the trainers' dependencies.
# usage: cpu.sh PYTHON VENV [PIP_REQUIREMENT...]
# Idempotent: a second run on the same machine only re-checks what is installed.
set -euo pipefail
python_bin="${1:?usage: cpu.sh PYTHON VENV [PIP_REQUIREMENT...]}"
venv="${2:?usage: cpu.sh PYTHON VENV [PIP_REQUIREMENT...]}"
shift 2
if [ "$#" -eq 0 ]; then set -- "tensorflow-cpu>=2.16" "pytensor>=3.0" "numba>=0.59"; fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# cloud-init and unattended-upgrades hold the dpkg lock on first boot: wait rather than fail.
apt_get() { $SUDO apt-get -o DPkg::Lock::Timeout=600 -q "$@"; }
apt_get update
apt_get install -y --no-install-recommends "$python_bin" "$python_bin-venv" python3-pip

$SUDO mkdir -p "$(dirname "$venv")"
if [ ! -x "$venv/bin/python" ]; then $SUDO "$python_bin" -m venv "$venv"; fi
$SUDO "$venv/bin/python" -m pip install -q --upgrade pip
$SUDO "$venv/bin/python" -m pip install -q "$@"
"$venv/bin/python" -c "import tensorflow, pytensor; print('setup ok:', tensorflow.__version__, pytensor.__version__)"
