# SPDX-License-Identifier: Apache-2.0
"""The committed release weights: small, inference parts only, loadable as the donor design; and the previous releases
(v1 the paper's design, v2 the donor design with a mean-pooled E_I), kept for the model card's comparison and one
`make export CKPT=...` away, still load."""

from __future__ import annotations

from pathlib import Path

import torch

from training.weights import RELEASE_WEIGHTS, WEIGHTS_FORMAT, load_inference_net

PREVIOUS_RELEASE = Path(RELEASE_WEIGHTS).parent / "v1" / "facecamo_cpu.pt"
V2_RELEASE = Path(RELEASE_WEIGHTS).parent / "v2" / "facecamo_donor_v2.pt"


def test_release_weights_are_small_and_hold_only_what_inference_needs():
    assert RELEASE_WEIGHTS.stat().st_size < 30e6
    state = torch.load(RELEASE_WEIGHTS, map_location="cpu", weights_only=True)
    assert state["format"] == WEIGHTS_FORMAT
    assert set(state["model"]) == {"identity_encoder", "generator"}
    assert "optimizers" not in state and "rng" not in state


def test_release_model_camouflages_a_face_batch():
    net, config, info = load_inference_net()
    assert config.model.design == "donor" and net.classifier is None and info["step"] > 0
    assert config.model.identity_pool == "flatten" and config.preset == "donor_cpu"  # v3: what `make train` builds
    with torch.no_grad():
        faces = torch.rand(2, 3, 112, 112) * 2 - 1
        out = net.camouflage(faces, faces.flip(0))  # source, donor target
        identity = net.identity_encoder(faces)
    assert out.shape == (2, 3, 112, 112) and torch.isfinite(out).all()
    assert identity.shape[2:] == (1, 1), "the donor design's identity is a vector: no spatial map of the source"


def test_previous_release_still_loads_for_the_comparison():
    net, config, _ = load_inference_net(PREVIOUS_RELEASE)
    assert config.model.design == "paper" and config.preset == "cpu"
    with torch.no_grad():
        faces = torch.rand(1, 3, 112, 112) * 2 - 1
        assert net.camouflage(faces, faces).shape == (1, 3, 112, 112)


def test_v2_release_still_loads_with_its_mean_pooled_identity_vector():
    net, config, _ = load_inference_net(V2_RELEASE)
    assert config.model.design == "donor" and config.model.identity_pool == "mean"  # saved before the key existed
    with torch.no_grad():
        faces = torch.rand(1, 3, 112, 112) * 2 - 1
        assert net.camouflage(faces, faces).shape == (1, 3, 112, 112)
