"""Typed configuration: dataclasses loaded from commented YAML presets (``training/presets/*.yaml``), overridable
from the command line with ``section.key=value``; the resolved config is saved beside every run and in every
checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PRESET_DIR = Path(__file__).parent / "presets"


@dataclass
class ModelConfig:
    identity_width: int = 32  # E_I base width; its code has 4x this many channels at 28x28
    identity_res_blocks: int = 4
    identity_grayscale: bool = False  # E_I sees luminance only, so colour must come from the appearance code
    appearance_arch: str = "resnet50"  # "resnet50" (paper) or "resnet18" (basic blocks)
    appearance_width: int = 64  # ResNet stem width; ResNet-50 at 64 gives the paper's 2048x4x1 code
    generator_res_blocks: int = 4
    mlp_dim: int = 256  # width of the MLP turning the appearance code into AdaIN parameters
    classifier_embedding: int = 256
    discriminator_width: int = 64
    discriminator_layers: int = 3
    discriminator_scales: int = 3  # 112, 56 and 28 px


@dataclass
class LossConfig:
    reconstruction: float = 5.0  # lambda_1, L_rec
    feature_identity: float = 1.0  # lambda_2, L_fI
    feature_appearance: float = 1.0  # lambda_3, L_fA
    difference: float = 1.0  # lambda_4, L_dif
    identity: float = 1.0  # lambda_5, L_id
    adversarial: float = 1.0  # lambda_6, L_adv
    difference_margin: float = 0.3  # L_dif stops pushing once the mean |G - x| in [-1, 1] units exceeds this
    structure_difference: float = 0.0  # not in the paper: hinge on the SSIM of generated vs source (0: off)
    structure_max_ssim: float = 0.6  # ... which stops pushing once the SSIM falls below this
    teacher: float = 0.0  # weight of the frozen face-embedder cosine loss (0: off)
    teacher_path: str = ""  # ONNX face-embedding network, e.g. ../shared/models/face_embedding/mobilefacenet.onnx


@dataclass
class TrainConfig:
    batch_size: int = 16  # images per step per process, as pairs of two images of one identity
    steps: int = 100_000
    lr: float = 1e-4  # Adam for E_I, G, D and the classifier (paper)
    appearance_lr: float = 1e-4  # SGD with momentum for E_A (paper)
    appearance_momentum: float = 0.9
    adam_betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 1e-4
    seed: int = 0
    log_every: int = 10
    image_every: int = 500
    save_every: int = 1000
    keep_last: int = 3
    threads: int = 0  # torch threads per process (0: leave torch's default)


@dataclass
class Config:
    preset: str = "paper"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls, values: dict, where: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown config keys in {where}: {unknown}; known: {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name) if not dataclasses.is_dataclass(known[name].type) else None
        if isinstance(default, tuple):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def config_from_dict(values: dict) -> Config:
    """Build a :class:`Config` from a (possibly partial) nested dict; unknown keys are errors."""
    values = dict(values)
    sections = {"model": ModelConfig, "loss": LossConfig, "train": TrainConfig}
    unknown = sorted(set(values) - set(sections) - {"preset"})
    if unknown:
        raise ValueError(f"unknown config sections {unknown}; expected preset, model, loss, train")
    return Config(
        preset=values.get("preset", "custom"),
        **{name: _build(cls, values.get(name) or {}, name) for name, cls in sections.items()},
    )


def parse_override(text: str) -> tuple[list[str], object]:
    """``"train.steps=10"`` -> (["train", "steps"], 10), the value parsed as YAML."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like section.key=value (e.g. train.steps=100)")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw)


def load_config(preset: str | Path, overrides: list[str] | None = None) -> Config:
    """Load a preset by name (``paper``, ``cpu``, ``tiny``) or YAML path and apply ``section.key=value`` overrides."""
    path = Path(preset)
    if not path.suffix:
        path = PRESET_DIR / f"{preset}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"preset {preset!r} not found; available presets: {available}, or a path to a YAML file")
    values = yaml.safe_load(path.read_text()) or {}
    values.setdefault("preset", path.stem)
    for override in overrides or []:
        keys, value = parse_override(override)
        if len(keys) != 2:
            raise ValueError(f"override {override!r} must name section.key (e.g. loss.teacher=1.0)")
        values.setdefault(keys[0], {})[keys[1]] = value
    return config_from_dict(values)
