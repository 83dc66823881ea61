# SPDX-License-Identifier: Apache-2.0
"""One checkpoint dict per save: resolved config, step, weights, optimiser and RNG state; files named by step."""

from __future__ import annotations

import re
from pathlib import Path

import torch

FORMAT = "facecamo-checkpoint-v1"
_NAME = re.compile(r"step_(\d+)\.pt")


def checkpoint_dir(run: Path) -> Path:
    return Path(run) / "checkpoints"


def checkpoint_step(path: Path) -> int | None:
    """The step in a checkpoint's file name (``step_00001234.pt`` -> 1234), or None for another name."""
    match = _NAME.fullmatch(Path(path).name)
    return int(match.group(1)) if match else None


def saved_checkpoints(run: Path) -> list[Path]:
    """The run's checkpoint files, oldest step first, ordered by the step in their names (no file is opened:
    :func:`save_checkpoint` names every file by the step it holds)."""
    paths = [(step, p) for p in checkpoint_dir(run).glob("step_*.pt") if (step := checkpoint_step(p)) is not None]
    return [p for _, p in sorted(paths)]


def save_checkpoint(run: Path, state: dict, keep_last: int) -> Path:
    """Write ``state`` (with ``step``) as ``checkpoints/step_XXXXXXXX.pt`` atomically and keep the newest ``keep_last``."""
    folder = checkpoint_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{state['step']:08d}.pt"
    partial = path.with_suffix(".pt.partial")
    torch.save({"format": FORMAT, **state}, partial)
    partial.replace(path)
    saved = saved_checkpoints(run)
    for old in saved[:-keep_last] if keep_last > 0 else []:
        old.unlink()
    return path


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint dict (tensors, numbers, strings and dicts only, so ``weights_only`` loading applies).

    Raises:
        ValueError: if the file is not a facecamo checkpoint.
    """
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a facecamo training checkpoint (format {FORMAT})")
    return state


def latest_checkpoint(run: Path) -> Path | None:
    """The saved checkpoint with the highest step (by its file name), or None when the run has none."""
    saved = saved_checkpoints(run)
    return saved[-1] if saved else None
