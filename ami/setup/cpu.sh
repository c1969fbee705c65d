#!/usr/bin/env bash
# Set up a CPU machine: a Python venv with the trainers' dependencies.
# usage: cpu.sh PYTHON VENV [PIP_REQUIREMENT...]   (common.sh's functions come first)
# Idempotent: a second run on the same machine only re-checks what is installed.
set -euo pipefail
python_bin="${1:?usage: cpu.sh PYTHON VENV [PIP_REQUIREMENT...]}"
venv="${2:?usage: cpu.sh PYTHON VENV [PIP_REQUIREMENT...]}"
shift 2
if [ "$#" -eq 0 ]; then set -- "tensorflow-cpu>=2.16" "pytensor>=3.0" "numba>=0.59" "threadpoolctl>=3.1" "scipy-openblas32>=0.3.31"; fi

python_env "$python_bin" "$venv" "$@"
# The frameworks these requirements bring (all of them, unless a staged setup asked for one).
# shellcheck disable=SC2046
check_imports "$venv" $(known_modules "$@")
