# SPDX-License-Identifier: Apache-2.0
"""Training through the real command lines: `make train`, resume, two processes, and the errors users meet."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, saved_checkpoints
from training.config import ConfigError, config_from_dict, load_config
from training.train import main

PYTHON = sys.executable


def run(command: list[str], **env) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **env})


def weights(path: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(path)
    return {f"{net}.{name}": value for net, values in state["model"].items() for name, value in values.items()}


def test_make_train_runs_two_steps(prepared, tmp_path):
    (tmp_path / "ready").touch()  # this interpreter's environment is already set up: make must not rebuild it
    result = run(["make", "--no-print-directory", "train", "PRESET=tiny", f"DATA={prepared}", f"RUN={tmp_path / 'run'}",
                  "STEPS=2", f"BIN={Path(PYTHON).parent}", f"READY={tmp_path / 'ready'}"], )
    assert result.returncode == 0, result.stderr[-3000:]
    state = load_checkpoint(latest_checkpoint(tmp_path / "run"))
    assert state["step"] == 2 and state["config"]["preset"] == "tiny"
    assert {"generator", "appearance", "discriminator"} == set(state["optimizers"])
    assert (tmp_path / "run" / "config.yaml").is_file()
    assert sorted(p.name for p in (tmp_path / "run" / "samples").glob("*.png"))[-1] == "step_00000002.png"
    assert list((tmp_path / "run" / "tensorboard").glob("events.*"))


def test_resume_continues_exactly(prepared, tmp_path):
    common = ["--preset", "tiny", "--data", str(prepared)]
    assert main([*common, "--run-dir", str(tmp_path / "whole"), "--steps", "4"]) == 0
    assert main([*common, "--run-dir", str(tmp_path / "split"), "--steps", "2"]) == 0
    assert main([*common, "--run-dir", str(tmp_path / "split"), "--steps", "4", "--resume"]) == 0
    whole = weights(tmp_path / "whole" / "checkpoints" / "step_00000004.pt")
    split = weights(tmp_path / "split" / "checkpoints" / "step_00000004.pt")
    assert whole.keys() == split.keys()
    for name in whole:
        assert torch.equal(whole[name], split[name]), f"{name} differs after resume"
    # keep_last=2 in the tiny preset: only the newest two remain
    assert len(list((tmp_path / "split" / "checkpoints").glob("*.pt"))) == 2


def test_fine_tune_starts_from_given_weights(prepared, tmp_path, capsys):
    common = ["--preset", "tiny", "--data", str(prepared)]
    assert main([*common, "--run-dir", str(tmp_path / "base"), "--steps", "2"]) == 0
    base_path = tmp_path / "base" / "checkpoints" / "step_00000002.pt"
    other_seed = ["--steps", "1", "--set", "train.seed=1", "loss.structure_difference=1"]
    assert main([*common, "--run-dir", str(tmp_path / "tuned"), "--init-from", str(base_path), *other_seed]) == 0
    assert main([*common, "--run-dir", str(tmp_path / "fresh"), *other_seed]) == 0
    first_steps = [tmp_path / run / "checkpoints" / "step_00000001.pt" for run in ("tuned", "fresh")]
    base, tuned, fresh = (weights(path) for path in (base_path, *first_steps))
    for name in (k for k in base if k.split(".")[0] in ("identity_encoder", "appearance_encoder", "generator", "classifier")):
        if base[name].is_floating_point() and base[name].dim() >= 2:  # norm scales start at 1 in every run
            # one step from the given weights stays next to them; a run from its own random start is elsewhere
            assert (tuned[name] - base[name]).abs().max() < 0.01, name
            assert (fresh[name] - base[name]).abs().max() > 0.01, name
    assert load_checkpoint(first_steps[0])["lineage"] == [{"weights": base_path.name, "step": 2}]
    mismatched = [*common, "--run-dir", str(tmp_path / "wide"), "--init-from", str(base_path), "--set", "model.identity_width=12"]
    assert main(mismatched) == 2
    assert "model.identity_width is 4 there, 12 here; build its model with --set model.identity_width=4" in capsys.readouterr().err
    assert main([*common, "--run-dir", str(tmp_path / "none"), "--init-from", str(tmp_path / "missing.pt")]) == 2


def test_two_processes_with_torchrun(prepared, tmp_path):
    torchrun = Path(PYTHON).parent / "torchrun"
    result = run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "training.train", "--preset", "tiny",
                  "--data", str(prepared), "--run-dir", str(tmp_path / "ddp"), "--steps", "3"])
    assert result.returncode == 0, result.stderr[-3000:]
    state = load_checkpoint(latest_checkpoint(tmp_path / "ddp"))
    assert state["step"] == 3 and state["world_size"] == 2 and len(state["rng"]["per_rank"]) == 2


def test_clear_errors(prepared, tmp_path, capsys):
    assert main(["--preset", "tiny", "--data", str(tmp_path / "missing"), "--run-dir", str(tmp_path / "r")]) == 2
    assert "make prepare" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "manifest.csv").write_text("file,identity,label,source,split\n")
    assert main(["--preset", "tiny", "--data", str(empty), "--run-dir", str(tmp_path / "r")]) == 2
    assert "no 'train' rows" in capsys.readouterr().err
    assert main(["--preset", "tiny", "--data", str(prepared), "--run-dir", str(tmp_path / "r"), "--steps", "1"]) == 0
    other = ["--preset", "tiny", "--data", str(prepared), "--run-dir", str(tmp_path / "r"), "--resume", "--set", "model.identity_width=8"]
    assert main(other) == 2
    assert "model.identity_width is 4 there, 8 here; build its model with --set model.identity_width=4" in capsys.readouterr().err
    # loss.teacher=0: the cpu preset's teacher lives in ../shared, absent on a user's clone; the preset check is the point
    assert main([*other[:-3], "--resume", "--preset", "cpu", "--set", "loss.teacher=0"]) == 2
    assert "trained with preset 'tiny'" in capsys.readouterr().err
    assert main(["--preset", "nope", "--data", str(prepared), "--run-dir", str(tmp_path / "r")]) == 2
    assert "available presets" in capsys.readouterr().err
    assert main(["--preset", "tiny", "--data", str(prepared), "--run-dir", str(tmp_path / "r"), "--set", "loss.teacher=1"]) == 2
    assert "teacher_path" in capsys.readouterr().err


def test_identity_warmup_trains_the_identity_encoder_alone_then_training_goes_on(prepared, tmp_path, capsys):
    from tests.conftest import require_shared

    teacher = require_shared("models/face_embedding/mobilefacenet.onnx")
    common = ["--preset", "tiny_donor", "--data", str(prepared)]
    wide = "model.identity_dim=128"  # the teacher's embedding is the first 128 components of the identity vector
    assert main([*common, "--run-dir", str(tmp_path / "base"), "--steps", "1", "--set", wide]) == 0
    base_path = tmp_path / "base" / "checkpoints" / "step_00000001.pt"
    warm = [*common, "--run-dir", str(tmp_path / "warm"), "--init-from", str(base_path), "--steps", "3", "--set", wide,
            "train.identity_warmup_steps=2", "train.save_every=1", "train.keep_last=5", "loss.identity_distill=1",
            f"loss.teacher_path={teacher}"]
    assert main(warm) == 0
    steps = [weights(tmp_path / "warm" / "checkpoints" / f"step_{n:08d}.pt") for n in (1, 2, 3)]

    def changed(before: dict, after: dict) -> set[str]:
        return {name.split(".")[0] for name in before if not torch.equal(before[name], after[name])}

    # the warm-up steps (1, 2) move E_I alone: G and the classifier stay the given weights, D its fresh start
    assert changed(weights(base_path), steps[0]) == {"identity_encoder", "discriminator"}  # D: not in --init-from
    assert changed(steps[0], steps[1]) == {"identity_encoder"}
    assert changed(steps[1], steps[2]) >= {"identity_encoder", "generator", "discriminator"}  # then all train
    # the warm-up needs a teacher, and an identity vector at least as long as its embedding, and says so
    assert main([*common, "--run-dir", str(tmp_path / "no_teacher"), "--set", "train.identity_warmup_steps=2"]) == 2
    assert "teacher_path" in capsys.readouterr().err
    assert main([*common, "--run-dir", str(tmp_path / "short"), "--set", "train.identity_warmup_steps=2",
                 f"loss.teacher_path={teacher}"]) == 2
    assert "raise model.identity_dim to at least 128" in capsys.readouterr().err


def test_run_records_for_the_model_card(tiny_checkpoint, tmp_path, capsys):
    from training.records import main as records_main

    run = tiny_checkpoint.parent.parent
    assert records_main(["--run", str(run), "--out", str(tmp_path), "--every", "1", "--grids", "1"]) == 0
    rows = (tmp_path / "losses_every_1_steps.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[0] == "step" and {"rec", "tgt_coarse", "total"} <= set(header) and rows[1].startswith("1,")
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "figure3_train_step_00001.jpg").stat().st_size > 1000
    assert records_main(["--run", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    assert "make train RUN=" in capsys.readouterr().err


def test_overrides_take_the_type_of_their_key(capsys):
    config = load_config("tiny", ["train.lr=1e-4", "train.steps=1e3", "model.identity_grayscale=false",
                                  "train.adam_betas=0.9,0.99", "loss.teacher_path=", "loss.difference=2"])
    assert config.train.lr == 1e-4 and isinstance(config.train.lr, float)  # YAML alone reads 1e-4 as a string
    assert config.train.steps == 1000 and isinstance(config.train.steps, int)
    assert config.model.identity_grayscale is False and config.train.adam_betas == (0.9, 0.99)
    assert config.loss.difference == 2.0 and isinstance(config.loss.difference, float) and config.loss.teacher_path == ""
    assert load_config("tiny", ["train.adam_betas=[0.5, 0.9]"]).train.adam_betas == (0.5, 0.9)
    for override, expected in [
        ("train.lrr=1e-4", "did you mean train.lr?"),  # a typo: the closest key, and every valid one
        ("train.lr=fast", "train.lr must be float"),
        ("train.steps=2.5", "train.steps must be int"),
        ("train.steps=yes", "train.steps must be int"),
        ("model.identity_grayscale=maybe", "model.identity_grayscale must be bool"),
        ("train.adam_betas=0.5", "train.adam_betas must be 2 values"),
        ("train.lr=nan", "finite"),
        ("trian.lr=1", "did you mean train?"),
        ("lr=1", "section.key"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(expected)):
            load_config("tiny", [override])
    with pytest.raises(ConfigError, match="valid keys in train: batch_size, steps, lr"):
        load_config("tiny", ["train.learning_rate=1"])
    # through the command line: exit code 2 and the message, no traceback
    assert main(["--preset", "tiny", "--data", "unused", "--run-dir", "unused", "--set", "train.lr=fast"]) == 2
    err = capsys.readouterr().err
    assert "train.lr must be float" in err and "Traceback" not in err


def test_saved_configs_load_with_their_types():
    # the committed release stored "difference: 5" (an int) and adam_betas as a list; both load as the declared types
    config = config_from_dict({"preset": "cpu", "loss": {"difference": 5}, "train": {"adam_betas": [0.5, 0.999]}})
    assert config.loss.difference == 5.0 and isinstance(config.loss.difference, float)
    assert config.train.adam_betas == (0.5, 0.999)
    assert config_from_dict(config.to_dict()) == config


def test_checkpoints_are_kept_by_the_step_in_their_names(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for step in (3, 20, 100):  # not checkpoints at all: pruning must not need to open them
        (folder / f"step_{step:08d}.pt").write_bytes(b"not a checkpoint")
    (folder / "notes.pt").write_bytes(b"kept: not a step file")
    path = save_checkpoint(tmp_path, {"step": 1_000_000_000, "model": {}}, keep_last=2)
    assert path.name == "step_1000000000.pt"  # more digits than the padding: ordered by number, not by text
    assert sorted(p.name for p in folder.iterdir()) == ["notes.pt", "step_00000100.pt", "step_1000000000.pt"]
    assert latest_checkpoint(tmp_path) == path and load_checkpoint(path)["step"] == 1_000_000_000
    assert [p.name for p in saved_checkpoints(tmp_path)] == ["step_00000100.pt", "step_1000000000.pt"]


def test_log_window_averages_an_interval_in_one_transfer():
    from training.trainer import LogWindow

    window = LogWindow()
    window.add({"rec": torch.tensor(1.0), "id_acc": torch.tensor(0.5)})
    window.add({"rec": torch.tensor(3.0), "id_acc": torch.tensor(1.0), "teacher": torch.tensor(2.0)})
    assert window.means() == {"rec": 2.0, "id_acc": 0.75, "teacher": 2.0}  # each name over the steps that logged it
    assert window.means() == {}  # emptied for the next interval


@pytest.mark.parametrize("preset", sorted(p.stem for p in (ROOT / "training" / "presets").glob("*.yaml")))
def test_every_shipped_preset_loads_and_builds_its_networks(preset):
    """A preset that only a GPU lease trains must not first fail there: each loads, builds, and its identity warm-up
    (when it has one) fits the teacher's 128-long embedding into the identity vector."""
    from training.losses import Objective, terms_for
    from training.models import build_network

    config = load_config(preset)
    build_network(config.model, num_identities=4)
    Objective(config.loss, teacher=torch.nn.Identity(), terms=terms_for(config.model.design))  # no weight left unused
    if config.train.identity_warmup_steps > 0 or config.loss.identity_distill > 0:
        assert config.model.design == "donor" and config.model.identity_dim >= 128 and config.loss.teacher_path
