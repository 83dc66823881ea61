"""The committed release weights: small, inference parts only, and loadable as the cpu preset."""

from __future__ import annotations

import torch

from training.weights import RELEASE_WEIGHTS, WEIGHTS_FORMAT, load_inference_net


def test_release_weights_are_small_and_hold_only_what_inference_needs():
    assert RELEASE_WEIGHTS.stat().st_size < 30e6
    state = torch.load(RELEASE_WEIGHTS, map_location="cpu", weights_only=True)
    assert state["format"] == WEIGHTS_FORMAT
    assert set(state["model"]) == {"identity_encoder", "appearance_encoder", "generator"}
    assert "optimizers" not in state and "rng" not in state


def test_release_model_camouflages_a_face_batch():
    net, config, info = load_inference_net()
    assert config.preset == "cpu" and net.classifier is None and info["step"] > 0
    with torch.no_grad():
        faces = torch.rand(2, 3, 112, 112) * 2 - 1
        out = net.camouflage(faces, faces.flip(0))
    assert out.shape == (2, 3, 112, 112) and torch.isfinite(out).all()
