"""Checkpoints of an MLP run: weights, optimizer state and the per-epoch history, after each
epoch, written so that a kill at any instant leaves either the old file or the new one.

One file, ``<dir>/mlp.npz``, written as ``np.savez`` to a temporary name in the same folder,
fsynced, then `os.replace`d over the old one (atomic on POSIX). A run keyed by a different
fingerprint (other net, optimizer, batch, seed or data) refuses the file rather than resuming
something else's weights.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainers.errors import BadArgument

FILE_NAME = "mlp.npz"
_TMP_PREFIX, _TMP_SUFFIX = ".mlp-", ".npz.tmp"


@dataclass(frozen=True)
class Checkpoint:
    """The state after `epoch` finished epochs (1-based count)."""

    epoch: int
    fingerprint: str
    params: list[np.ndarray]
    slots: dict[str, list[np.ndarray]]
    t: int
    history: list[dict[str, Any]] = field(default_factory=list)  # one dict per finished epoch


def save_checkpoint(directory: Path, ckpt: Checkpoint) -> Path:
    """Write `ckpt` atomically to ``directory/mlp.npz`` and return that path."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {f"param_{i}": p for i, p in enumerate(ckpt.params)}
    for name, values in ckpt.slots.items():
        arrays.update({f"slot_{name}_{i}": v for i, v in enumerate(values)})
    meta = {
        "epoch": ckpt.epoch,
        "fingerprint": ckpt.fingerprint,
        "t": ckpt.t,
        "n_params": len(ckpt.params),
        "slots": sorted(ckpt.slots),
        "history": ckpt.history,
    }
    arrays["meta"] = np.array(json.dumps(meta))
    target = directory / FILE_NAME
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_checkpoint(directory: Path, fingerprint: str) -> Checkpoint | None:
    """The checkpoint in `directory`, or None when there is none yet.

    Temporaries left by a writer killed mid-save are deleted: the file they were to replace is
    still whole, and one run owns its checkpoint folder.

    Raises:
        BadArgument: the file is unreadable, or was written by a run with another fingerprint.
    """
    for stale in directory.glob(f"{_TMP_PREFIX}*{_TMP_SUFFIX}"):
        stale.unlink(missing_ok=True)
    path = directory / FILE_NAME
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            params = [npz[f"param_{i}"] for i in range(meta["n_params"])]
            slots = {
                name: [npz[f"slot_{name}_{i}"] for i in range(meta["n_params"])]
                for name in meta["slots"]
            }
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise BadArgument(
            f"checkpoint {path} is unreadable ({exc}); delete it to start over"
        ) from exc
    if meta["fingerprint"] != fingerprint:
        raise BadArgument(
            f"checkpoint {path} belongs to a different run (net, optimizer, batch, seed or data "
            "differ); use another --checkpoint-dir or delete it"
        )
    return Checkpoint(
        epoch=int(meta["epoch"]),
        fingerprint=fingerprint,
        params=params,
        slots=slots,
        t=int(meta["t"]),
        history=list(meta["history"]),
    )
