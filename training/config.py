# SPDX-License-Identifier: Apache-2.0
"""Typed configuration: dataclasses loaded from commented YAML presets (``training/presets/*.yaml``), overridable
from the command line with ``section.key=value``; the resolved config is saved beside every run and in every
checkpoint.

Every value, whether it comes from a preset, an override or a checkpoint's saved config, is converted to the type its
field declares (:func:`coerce`), so ``--set train.lr=1e-4`` is the float 0.0001 (YAML alone would keep ``1e-4`` a
string), ``train.steps=1e3`` the int 1000, and a value that cannot be converted is a :class:`ConfigError` naming the
key and the type it needs.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PRESET_DIR = Path(__file__).parent / "presets"


class ConfigError(ValueError):
    """A preset, override or saved config the user can fix: the message names the key and what it must be."""


@dataclass
class ModelConfig:
    design: str = "paper"  # "paper": spatial identity code + appearance encoder; "donor": identity vector + donor target
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
    identity_dim: int = 256  # donor design: length of the pooled identity vector that drives G's AdaIN blocks
    identity_pool: str = "mean"  # donor design: E_I's 7x7 features to that vector: "mean" over positions or "flatten"
    structure_width: int = 32  # donor design: base width of G's encoder of the donor target
    donors_per_blend: int = 3  # donor design: portraits averaged into one donor (k-same style: the donor is nobody)
    generator: str = "adain"  # donor design: "adain" (G decodes a new face, v2/v3) or "inject" (target + bounded residual)
    residual_bound: float = 0.094  # inject: the largest |residual| per channel G may learn, model range (12/255 of 0..255)
    # inject: "none" (v4: the same bound everywhere) or "visibility" (the bound scaled per pixel by the donor target's
    # local lightness and contrast, training/models/donor.py visibility_mask: smaller in dim and flat skin; v5)
    residual_mask: str = "none"


@dataclass
class LossConfig:
    """Loss weights and their parameters. Each weight is named after its term in :data:`training.losses.TERMS`."""

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
    # donor design (ModelConfig.design == "donor"), see training/models/donor.py:
    target_coarse: float = 0.0  # L1 on 4x-downsampled images + (1 - SSIM) at half and quarter size, G(.) vs the target
    target_pixel: float = 0.0  # L1 at full size, G(.) vs the target (texture anchor; small)
    self_reconstruction: float = 0.0  # G(E_I(x), x) -> x: with the source as its own donor, nothing changes
    coarse_difference: float = 0.0  # hinge on SSIM at 28x28 (the evaluation's SSIM-28) of G(.) vs the source
    coarse_max_ssim: float = 0.5  # ... pushing until it falls below this
    teacher_augment: bool = False  # blur, resize and colour-jitter the generated face before the teacher sees it
    identity_distill: float = 0.0  # the first E components of E_I's vector point where the teacher's embedding does
    teacher_copies: int = 1  # augmented copies of each generated face the teacher reads per step (the loss averages them)
    teacher_features: float = 0.0  # inject: 1 - cosine of the teacher's mid-level features (half-way layer), G(.) vs source
    residual_colour: float = 0.0  # inject: mean square of the residual blurred to 8x8-pixel cells, over bound^2 (no colour drift)
    residual_size: float = 0.0  # inject: the learned bound over its maximum (pushes the residual to the smallest that works)
    injection_distill: float = 0.0  # inject: mean square of G's residual minus the per-face injection's, over bound^2
    injection_residuals: str = ""  # inject: the file of per-face injection residuals (python -m training.injection_bank)
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
    log_every: int = 10  # steps between logged (window-averaged) losses; also when the GPU is waited for
    image_every: int = 500
    save_every: int = 1000
    keep_last: int = 3
    threads: int = 0  # torch threads per process (0: leave torch's default)
    donor_targets: int = 6  # donor design: targets made per training face before the first step (one drawn per step)
    donor_pool: int = 1024  # donor design: blended donors those targets are made from
    identity_warmup_steps: int = 0  # donor design: first steps train E_I alone on the identity distillation (one process)
    injected_share: float = 0.0  # loss.injection_distill: share of each batch's pairs whose source has an injection residual


@dataclass
class Config:
    preset: str = "paper"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = {"model": ModelConfig, "loss": LossConfig, "train": TrainConfig}

_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def _type_name(kind) -> str:
    origin = typing.get_origin(kind)
    if origin in (tuple, list):
        return f"{origin.__name__} of {', '.join(_type_name(a) for a in typing.get_args(kind) if a is not Ellipsis)}"
    return getattr(kind, "__name__", str(kind))


def _scalar(value, kind: type, key: str):
    """Convert one value to ``kind`` (bool, int, float or str); raise :class:`ConfigError` naming ``key``."""

    def fail() -> ConfigError:
        return ConfigError(f"{key} must be {_type_name(kind)}, got {value!r}")

    if kind is str:
        if isinstance(value, str):
            return value
        if value is None:
            return ""
        if isinstance(value, (bool, int, float)):
            return str(value)
        raise fail()
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise fail()
    if isinstance(value, bool):  # YAML's yes/no for a number is a mistake, not 1/0
        raise fail()
    if kind is float:
        try:
            # "1e-4" arrives as a string: PyYAML reads an exponent without a dot as text
            number = float(value) if isinstance(value, (int, float)) else float(str(value).strip())
        except ValueError:
            raise fail() from None
        if not math.isfinite(number):
            raise ConfigError(f"{key} must be a finite float, got {value!r}")
        return number
    if kind is int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        try:
            return int(text)  # exact, whatever its size
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            raise fail() from None
        if not number.is_integer():
            raise fail()
        return int(number)  # 1e3 and 1000.0 are 1000; 2.5 is an error
    raise ConfigError(f"{key} has type {_type_name(kind)}, which overrides cannot set")


def coerce(value, kind, key: str):
    """Convert ``value`` (from YAML, an override's text or a saved checkpoint) to the declared type ``kind``.

    Supports bool, int, float, str and ``tuple[...]`` / ``list[...]`` of those; a sequence may be given as a list,
    a YAML flow list (``[0.5, 0.999]``) or comma-separated text (``0.5,0.999``).

    Raises:
        ConfigError: naming ``key``, the expected type and the value.
    """
    origin = typing.get_origin(kind)
    if origin not in (tuple, list):
        return _scalar(value, kind, key)
    if isinstance(value, str):
        text = value.strip()
        parsed = yaml.safe_load(text) if text.startswith("[") else [part for part in text.split(",") if part.strip()]
        value = parsed
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key} must be {_type_name(kind)} (e.g. [0.5, 0.999]), got {value!r}")
    args = typing.get_args(kind)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ConfigError(f"{key} must be {len(args)} values ({_type_name(kind)}), got {len(value)}: {value!r}")
        items = [_scalar(v, a, key) for v, a in zip(value, args)]
    else:
        element = args[0] if args else str
        items = [_scalar(v, element, key) for v in value]
    return tuple(items) if origin is tuple else items


def field_types(cls: type) -> dict[str, type]:
    """Field name -> declared type of a config dataclass (annotations resolved, not strings)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _unknown_key_message(section: str, key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {section}.{close[0]}? " if close else ""
    return f"unknown config key {section}.{key}; {hint}valid keys in {section}: {', '.join(known)}"


def _build(cls, values: dict, section: str):
    if not isinstance(values, dict):
        raise ConfigError(f"config section {section} must be a mapping of key: value, got {values!r}")
    types = field_types(cls)
    kwargs = {}
    for name, value in values.items():
        if name not in types:
            raise ConfigError(_unknown_key_message(section, str(name), list(types)))
        kwargs[name] = coerce(value, types[name], f"{section}.{name}")
    return cls(**kwargs)


def config_from_dict(values: dict) -> Config:
    """Build a :class:`Config` from a (possibly partial) nested dict, each value converted to its field's type.

    Raises:
        ConfigError: for an unknown section or key (listing the valid ones) or a value of the wrong type.
    """
    values = dict(values)
    unknown = sorted(set(values) - set(SECTIONS) - {"preset"})
    if unknown:
        raise ConfigError(f"unknown config sections {unknown}; expected preset, {', '.join(SECTIONS)}")
    return Config(
        preset=str(values.get("preset", "custom")),
        **{name: _build(cls, values.get(name) or {}, name) for name, cls in SECTIONS.items()},
    )


def parse_override(text: str) -> tuple[str, str, object]:
    """``"train.lr=1e-4"`` -> ("train", "lr", 0.0001): the value converted to the field's declared type.

    Raises:
        ConfigError: for a malformed override, an unknown section or key (listing the valid ones, with the closest
            match for a typo), or a value that is not of the key's type.
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value (e.g. train.steps=100)")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"override {text!r} must name section.key (e.g. loss.teacher=1.0); sections: {', '.join(SECTIONS)}")
    section, name = parts
    if section not in SECTIONS:
        close = difflib.get_close_matches(section, list(SECTIONS), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(f"override {text!r}: unknown config section {section!r}; {hint}sections: {', '.join(SECTIONS)}")
    types = field_types(SECTIONS[section])
    if name not in types:
        raise ConfigError(f"override {text!r}: " + _unknown_key_message(section, name, list(types)))
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        raw = raw[1:-1]  # a quoted value: the quotes are the shell's business, not part of the value
    return section, name, coerce(raw, types[name], f"{section}.{name}")


def load_config(preset: str | Path, overrides: list[str] | None = None) -> Config:
    """Load a preset by name (``paper``, ``cpu``, ``tiny``) or YAML path and apply ``section.key=value`` overrides.

    Raises:
        FileNotFoundError: for an unknown preset (listing the available ones).
        ConfigError: for a bad key or value in the preset or an override.
    """
    path = Path(preset)
    if not path.suffix:
        path = PRESET_DIR / f"{preset}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"preset {preset!r} not found; available presets: {available}, or a path to a YAML file")
    values = yaml.safe_load(path.read_text()) or {}
    values.setdefault("preset", path.stem)
    for override in overrides or []:
        section, name, value = parse_override(override)
        values.setdefault(section, {})[name] = value
    try:
        return config_from_dict(values)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
