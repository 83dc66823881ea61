# SPDX-License-Identifier: Apache-2.0
"""The committed release weights (v5, the donor design with the injection generator, its bound masked by
visibility): small, inference parts only, loadable, and within their bound of the donor target; the paper design's release (v1), kept one `make export CKPT=...`
away, still loads; the compact resumable checkpoint carries training on."""

from __future__ import annotations

from pathlib import Path

import torch

from training.weights import RELEASE_WEIGHTS, WEIGHTS_FORMAT, load_inference_net

PREVIOUS_RELEASE = Path(RELEASE_WEIGHTS).parent / "v1" / "facecamo_cpu.pt"
RESUME_CHECKPOINT = Path(RELEASE_WEIGHTS).parents[1] / "resume" / "inject_cpu.pt"


def test_release_weights_are_small_and_hold_only_what_inference_needs():
    assert RELEASE_WEIGHTS.stat().st_size < 30e6
    state = torch.load(RELEASE_WEIGHTS, map_location="cpu", weights_only=True)
    assert state["format"] == WEIGHTS_FORMAT
    assert set(state["model"]) == {"identity_encoder", "generator"}
    assert "optimizers" not in state and "rng" not in state


def test_release_model_camouflages_a_face_batch():
    net, config, info = load_inference_net()
    assert config.model.design == "donor" and net.classifier is None and info["step"] > 0
    assert config.model.generator == "inject" and config.preset == "inject_cpu"  # v5: what `make train` builds
    assert config.model.residual_mask == "visibility"  # v5's bound follows the donor target's light (v4: "none")
    with torch.no_grad():
        faces = torch.rand(2, 3, 112, 112) * 2 - 1
        targets = faces.flip(0) * 0.9
        out = net.camouflage(faces, targets)  # source, donor target
        identity = net.identity_encoder(faces)
        bound = float(net.generator.bound())
    assert out.shape == (2, 3, 112, 112) and torch.isfinite(out).all()
    assert identity.shape[2:] == (1, 1), "the donor design's identity is a vector: no spatial map of the source"
    assert 0 < bound <= 0.094 + 1e-6 and (out - targets).abs().max() <= bound + 1e-3  # the donor's face, within 12/255


def test_previous_release_still_loads_for_the_comparison():
    net, config, _ = load_inference_net(PREVIOUS_RELEASE)
    assert config.model.design == "paper" and config.preset == "cpu"
    with torch.no_grad():
        faces = torch.rand(1, 3, 112, 112) * 2 - 1
        assert net.camouflage(faces, faces).shape == (1, 3, 112, 112)


def test_the_compact_checkpoint_is_the_release_run_and_small():
    from training.checkpoint import load_checkpoint

    assert RESUME_CHECKPOINT.stat().st_size < 30e6
    state = load_checkpoint(RESUME_CHECKPOINT)
    release = torch.load(RELEASE_WEIGHTS, map_location="cpu", weights_only=True)
    # the release run carried on: the next session resumes from here (RESUME=models/resume/inject_cpu.pt)
    assert state["config"]["preset"] == release["config"]["preset"] and state["step"] >= release["step"]
    assert {"generator", "discriminator"} <= set(state["optimizers"]) and "rng" in state  # resumable, not only weights
