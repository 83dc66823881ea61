"""One checkpoint dict per save: resolved config, step, weights, optimiser and RNG state; files named by step."""

from __future__ import annotations

from pathlib import Path

import torch

FORMAT = "facecamo-checkpoint-v1"


def checkpoint_dir(run: Path) -> Path:
    return Path(run) / "checkpoints"


def save_checkpoint(run: Path, state: dict, keep_last: int) -> Path:
    """Write ``state`` (with ``step``) as ``checkpoints/step_XXXXXXXX.pt`` atomically and keep the newest ``keep_last``."""
    folder = checkpoint_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{state['step']:08d}.pt"
    partial = path.with_suffix(".pt.partial")
    torch.save({"format": FORMAT, **state}, partial)
    partial.replace(path)
    saved = sorted(folder.glob("step_*.pt"), key=lambda p: load_checkpoint(p)["step"])
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
    """The saved checkpoint with the highest step recorded inside it (not parsed from its name)."""
    candidates = list(checkpoint_dir(run).glob("step_*.pt"))
    if not candidates:
        return None
    return max(candidates, key=lambda p: load_checkpoint(p)["step"])
