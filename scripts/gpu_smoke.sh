#!/usr/bin/env bash
# The engine's GPU path on a real NVIDIA machine: GPU detection (nvidia-smi), one GPU task per
# GPU with CUDA_VISIBLE_DEVICES set, the cpu variant seeing no GPU, measure + fetch + report.
# The workload is a user `run:` job in JAX, because a GPU machine may have JAX but neither
# TensorFlow nor PyTensor. Needs: python3 with pip, jax with CUDA, and orchestrate's own
# dependencies as wheels in $WHEELS (no network needed). Results under $OUT (default /tmp).
set -u
OUT=${OUT:-/tmp/gpu-smoke}
WHEELS=${WHEELS:-.gpu_wheels}
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
python3 --version
nvidia-smi -L || { echo "no nvidia-smi: not a GPU machine"; exit 3; }
python3 -m pip install -q --no-index --find-links "$REPO/$WHEELS" --target /tmp/orch-deps \
  pydantic pyyaml rich pathspec croniter "apscheduler<4" 2>&1 | tail -3
export PYTHONPATH="$REPO:/tmp/orch-deps"
work=$(mktemp -d)
mkdir -p "$work/project"
cat > "$work/project/jaxmm.py" <<'PY'
import json, os, sys, time
import jax, jax.numpy as jnp
out = sys.argv[1]
dev = jax.devices()[0]
x = jax.random.normal(jax.random.PRNGKey(0), (4096, 4096), dtype=jnp.float32)
f = jax.jit(lambda a: (a @ a).sum())
f(x).block_until_ready()
t0 = time.perf_counter()
for _ in range(20):
    f(x).block_until_ready()
dt = (time.perf_counter() - t0) / 20
tflops = 2 * 4096**3 / dt / 1e12
print(f"epoch 1/1 platform={dev.platform} device={dev} {tflops:.2f} TFLOP/s", flush=True)
json.dump({"platform": dev.platform, "device": str(dev), "tflops": tflops,
           "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")},
          open(os.path.join(out, "metrics.json"), "w"))
PY
cat > "$work/exp.yaml" <<'YAML'
name: gpu-smoke
workdir: project
jobs:
  - name: jaxmm
    run: export JAX_PLATFORMS=$([ -n "$CUDA_VISIBLE_DEVICES" ] && echo cuda || echo cpu); python jaxmm.py $ORCHESTRATE_OUT
    device: [cpu, gpu]
YAML
cd "$work"
ORCHESTRATE_STATE_DIR="$work/state" python3 -m orchestrator plan exp.yaml
ORCHESTRATE_STATE_DIR="$work/state" python3 -m orchestrator run exp.yaml --json \
  --runs-dir "$OUT/runs" > "$OUT/run.jsonl"
rc=$?
tail -1 "$OUT/run.jsonl"
for f in "$OUT"/runs/*/jaxmm-*/metrics.json; do echo "$f: $(cat "$f")"; done
exit $rc
