# SPDX-License-Identifier: Apache-2.0
"""Inference weights: what a release ships (E_I, G, E_A in the paper design, and the resolved config; no classifier,
discriminator or optimiser state), and loading either such a file or a full training checkpoint into an inference network."""

from __future__ import annotations

from pathlib import Path

import torch

from training.checkpoint import FORMAT as CHECKPOINT_FORMAT
from training.config import Config, config_from_dict
from training.models import build_network, inference_parts

WEIGHTS_FORMAT = "facecamo-weights-v1"
RELEASE_WEIGHTS = Path(__file__).resolve().parents[1] / "models" / "release" / "facecamo.pt"


def export_inference_weights(checkpoint: dict, path: Path, half: bool = False, extra: dict | None = None) -> Path:
    """Write the inference part of a training checkpoint dict to ``path`` (fp16 storage when ``half``)."""
    cast = (lambda t: t.half() if t.is_floating_point() else t) if half else (lambda t: t)
    state = {
        "format": WEIGHTS_FORMAT,
        "config": checkpoint["config"],
        "step": checkpoint["step"],
        "lineage": checkpoint.get("lineage", []),  # fine-tuned from: total steps = step + sum of these steps
        "model": {part: {k: cast(v.clone()) for k, v in checkpoint["model"][part].items()}
                  for part in inference_parts(config_from_dict(checkpoint["config"]).model)},
        **(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def read_weights(path: Path) -> dict:
    """The dict in release weights or a training checkpoint (float tensors as stored: fp16 or fp32).

    Raises:
        FileNotFoundError / ValueError: naming the file and what was expected.
    """
    if not path.is_file():
        raise FileNotFoundError(f"model weights {path} not found; pass a training checkpoint or release weights (.pt)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") not in (WEIGHTS_FORMAT, CHECKPOINT_FORMAT):
        raise ValueError(f"{path} is neither facecamo release weights nor a training checkpoint")
    return state


def load_parts(net: torch.nn.Module, state: dict, parts: tuple[str, ...] | None = None) -> None:
    """Copy the named sub-networks (default: the design's inference parts) of a :func:`read_weights` dict into
    ``net``, as float32."""
    parts = parts if parts is not None else inference_parts(config_from_dict(state["config"]).model)
    for part in parts:
        getattr(net, part).load_state_dict({k: v.float() for k, v in state["model"][part].items()})


def load_inference_net(path: str | Path | None = None, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Config, dict]:
    """Build an eval-mode float32 network of the file's design (:func:`training.models.build_network`, no classifier)
    from release weights or a training checkpoint.

    Args:
        path: a ``.pt`` written by :func:`export_inference_weights` or by training; None: the committed release model.
    Returns: (network, resolved config, the file's other fields such as ``step`` and ``lineage``).
    Raises:
        FileNotFoundError / ValueError: naming the file and what was expected.
    """
    state = read_weights(Path(path) if path is not None else RELEASE_WEIGHTS)
    config = config_from_dict(state["config"])
    net = build_network(config.model)
    load_parts(net, state)
    info = {k: v for k, v in state.items() if k not in ("model", "optimizers", "rng")}
    return net.to(device).eval(), config, info
