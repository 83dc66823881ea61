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
    if state.get("compact"):
        state = _map_floats(state, lambda t: t.float() if t.dtype == torch.bfloat16 else t)
    return state


def _map_floats(value, cast):
    if isinstance(value, torch.Tensor):
        return cast(value)
    if isinstance(value, dict):
        return {k: _map_floats(v, cast) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_floats(v, cast) for v in value]
    if isinstance(value, tuple):
        return tuple(_map_floats(v, cast) for v in value)
    return value


def compact_checkpoint(source: Path, destination: Path) -> Path:
    """Write a training checkpoint with its float32 weights and optimiser moments stored as bfloat16 (half the bytes,
    float32's range: Adam's second moments would underflow in float16), for the one resumable checkpoint kept in the
    repository (``models/resume/``). :func:`load_checkpoint` casts them back; a run resumed from it continues from the
    same step, weights and RNG state up to bfloat16 rounding (about 3 significant digits)."""
    state = load_checkpoint(source)
    small = _map_floats(state, lambda t: t.to(torch.bfloat16) if t.dtype == torch.float32 and t.numel() > 1 else t.clone())
    destination.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**small, "compact": True}, destination)
    return destination


def main(argv: list[str] | None = None) -> int:
    """``python -m training.checkpoint SRC DST``: write the compact copy of checkpoint SRC to DST."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("source", type=Path)
    parser.add_argument("destination", type=Path)
    args = parser.parse_args(argv)
    path = compact_checkpoint(args.source, args.destination)
    print(f"{path}: {path.stat().st_size / 1e6:.1f} MB (from {args.source.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def latest_checkpoint(run: Path) -> Path | None:
    """The saved checkpoint with the highest step (by its file name), or None when the run has none."""
    saved = saved_checkpoints(run)
    return saved[-1] if saved else None
