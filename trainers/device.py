"""Choosing the device before a framework runs its first op, and refusing a GPU we lack.

Rules (the trainer contract of ARCHITECTURE.md):
1. ``cpu`` hides every GPU: TensorFlow gets ``CUDA_VISIBLE_DEVICES=-1`` before it is imported and
   ``tf.config.set_visible_devices([], "GPU")`` after; PyTensor compiles with Numba, which never
   touches a GPU.
2. ``gpu`` must find one: TensorFlow must list a physical GPU; PyTensor must import JAX and JAX
   must list a CUDA device. JAX is imported only on that path (it is not installed on CPU hosts).
3. No GPU -> `DeviceUnavailable` (exit 3) with one line saying why and what to pass, unless
   ``allow_cpu_fallback``: then the run goes on with rule 1 and the choice says so, so that
   manifest.json records ``cpu``. A run never says ``gpu`` while running on the CPU.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from trainers.errors import DeviceUnavailable, TrainerError

# What each framework name needs importable, and how to get it (pyproject's extras).
_REQUIRES = {
    "tensorflow": ("tensorflow", "pip install 'orchestrate[tensorflow]'"),
    "theano": ("pytensor", "pip install 'orchestrate[theano]'"),
}


@dataclass(frozen=True)
class DeviceChoice:
    """The device a run really uses."""

    requested: str  # "cpu" | "gpu"
    used: str  # "cpu" | "gpu"
    name: str  # human description: the GPU's model, or "cpu"
    fell_back: bool = False  # gpu was asked for, none found, --allow-cpu-fallback given
    reason: str = ""  # why no GPU, when fell_back


def choose_device(framework: str, requested: str, *, allow_cpu_fallback: bool) -> DeviceChoice:
    """Apply rules 1-3 for `framework` ("tensorflow" | "theano"); call before any framework op.

    Raises:
        DeviceUnavailable: ``gpu`` requested, none usable, and no fallback allowed.
    """
    # TensorFlow's C++ start-up chatter (oneDNN notices, CUDA probing) is not the user's concern;
    # a user who wants it sets the variable.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _require(framework)
    if requested == "cpu":
        _hide_gpus(framework)
        return DeviceChoice(requested="cpu", used="cpu", name="cpu")
    gpu_name, reason = _find_gpu(framework)
    if gpu_name is not None:
        return DeviceChoice(requested="gpu", used="gpu", name=gpu_name)
    if not allow_cpu_fallback:
        raise DeviceUnavailable(
            f"--device gpu: {reason}; pass --allow-cpu-fallback to run on the CPU instead"
        )
    _hide_gpus(framework)
    return DeviceChoice(requested="gpu", used="cpu", name="cpu", fell_back=True, reason=reason)


def _require(framework: str) -> None:
    import importlib.util

    module, hint = _REQUIRES[framework]
    if importlib.util.find_spec(module) is None:
        raise TrainerError(
            f"framework {framework!r} needs {module}, which is not installed: {hint}"
        )


def _hide_gpus(framework: str) -> None:
    if framework != "tensorflow":
        return  # Numba is CPU-only; nothing to hide
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    import tensorflow as tf

    # RuntimeError: TensorFlow was already initialised in this process (tests run several
    # trainers); the environment variable above has then done its work, or the GPU stays
    # visible and the model still pins itself to /CPU:0.
    with contextlib.suppress(RuntimeError):
        tf.config.set_visible_devices([], "GPU")


def _find_gpu(framework: str) -> tuple[str | None, str]:
    """(GPU description, "") when one is usable, else (None, why not)."""
    if framework == "tensorflow":
        try:
            import tensorflow as tf
        except ImportError:
            return None, "TensorFlow is not installed"
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            if not tf.test.is_built_with_cuda():
                return None, "this TensorFlow has no CUDA support (tensorflow-cpu is installed)"
            return None, "TensorFlow sees no GPU (no CUDA device or driver visible)"
        details = tf.config.experimental.get_device_details(gpus[0])
        return str(details.get("device_name", gpus[0].name)), ""
    try:
        import jax  # type: ignore[import-not-found]
    except ImportError:
        return None, "the theano framework runs on a GPU through JAX, which is not installed"
    try:
        devices = jax.devices("gpu")
    except RuntimeError as exc:
        return None, f"JAX sees no CUDA GPU ({str(exc).splitlines()[0]})"
    return str(getattr(devices[0], "device_kind", devices[0])), ""
