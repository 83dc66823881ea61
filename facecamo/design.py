# SPDX-License-Identifier: Apache-2.0
"""The camouflage designs, described once (numpy only): what each one's bank holds, the sizes of its served tensors and
where its generated face is pasted. The checkpoint (``model.design``) and the served ``config.pbtxt`` (parameter
``design``) name the design; the pipeline, the export, the evaluation and the trainer are handed a :class:`Design`
and never guess it from attributes or dtypes.

Two designs share :mod:`facecamo.spec`'s tensor names:

- ``donor`` (the release since v2): IDENTITY_CODE is a vector [C_id, 1, 1]; the bank holds donor faces, uint8
  [K, 112, 112, 3] RGB in the mean face shape; the generator's second input is the donor target [3, 112, 112] (the
  donor warped onto the face, :func:`facecamo.donor.donor_target`); the face is pasted through the donor's region.
- ``paper`` (Li et al., ICPR 2020): IDENTITY_CODE is spatial [C_id, 28, 28]; the bank holds appearance codes, float32
  [K, C_app, 4, 1], made by the appearance encoder (exported to build the bank, not served); the second input is the
  entry itself; the paste region is an ellipse.

Adding a design: a :class:`Design` here, its network module in ``training/models/`` (whose class names it in
``design``), and a preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from facecamo import spec
from facecamo.donor import donor_target

AppearanceMaker = Callable[[np.ndarray, np.ndarray, np.ndarray], "tuple[np.ndarray, np.ndarray | None]"]
"""(uint8 (112, 112, 3) aligned crop, float (68, 2) its landmarks in crop pixels, one bank entry) -> (float32 APPEARANCE
[C_app, H_app, W_app], float32 (112, 112) paste region or None for the ellipse)."""


def _donor_appearance(crop: np.ndarray, landmarks: np.ndarray, entry: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    target, region = donor_target(crop, landmarks, entry)
    return spec.to_model_input(target[None])[0], region


def _code_appearance(crop: np.ndarray, landmarks: np.ndarray, entry: np.ndarray) -> tuple[np.ndarray, None]:
    return np.asarray(entry, np.float32), None


@dataclass(frozen=True)
class Design:
    """One design.

    Attributes:
        name: as in ``model.design`` and the served config's ``design`` parameter.
        bank_dtype: numpy dtype name of the served bank's entries (``uint8`` donor faces, ``float32`` codes).
        identity_spatial: IDENTITY_CODE is [C_id, 28, 28] (True) or a vector [C_id, 1, 1] (False).
        appearance_encoder: the design has an appearance encoder (exported to ONNX to build the bank).
        donor_region: the generated face is pasted through the donor's region (True) or an ellipse (False).
        make_appearance: how one face's APPEARANCE input is made from its bank entry (:meth:`appearance`).
    """

    name: str
    bank_dtype: str
    identity_spatial: bool
    appearance_encoder: bool
    donor_region: bool
    make_appearance: AppearanceMaker = field(default=_code_appearance, compare=False, repr=False)

    @property
    def donors(self) -> bool:
        """The bank holds faces that become donor targets (the donor design), not codes given to G as they are."""
        return self.bank_dtype == "uint8"

    def sizes(self, identity_channels: int, appearance_channels: int | None = None) -> dict[str, int]:
        """The values of :mod:`facecamo.spec`'s symbolic dimensions for this design (``appearance_channels``: the
        appearance encoder's, needed by a design that has one)."""
        identity_side = spec.CODE_SIZE if self.identity_spatial else 1
        sizes = {"C_id": int(identity_channels), "H_id": identity_side, "W_id": identity_side}
        return {**sizes, **self.appearance_sizes(appearance_channels)}

    def appearance_sizes(self, appearance_channels: int | None = None) -> dict[str, int]:
        """The generator's APPEARANCE sizes: the donor target's [3, 112, 112] or the code's [C_app, 4, 1]."""
        if self.donors:
            return {"C_app": 3, "H_app": spec.FACE_SIZE, "W_app": spec.FACE_SIZE}
        if appearance_channels is None:
            raise ValueError(f"the {self.name} design's appearance code sizes need the appearance encoder's channels")
        return {"C_app": int(appearance_channels), "H_app": 4, "W_app": 1}

    def appearance(self, crop: np.ndarray, landmarks: np.ndarray, entry: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The generator's APPEARANCE input for one aligned face made with bank ``entry``, and its paste region.

        Args:
            crop: uint8 (112, 112, 3) RGB aligned face. landmarks: float (68, 2) in crop pixels.
            entry: one bank entry (a donor, uint8 (112, 112, 3), or a code, float32 (C_app, 4, 1)).
        Returns:
            (float32 [C_app, H_app, W_app]: the donor target in [-1, 1] or the code itself, float32 (112, 112) region
            the face is pasted through, or None for the ellipse).
        Raises:
            ValueError: for landmarks a donor cannot be warped onto.
        """
        return self.make_appearance(crop, landmarks, entry)

    def bank_problem(self, bank: np.ndarray) -> str | None:
        """What is wrong with ``bank`` as this design's bank, or None."""
        bank = np.asarray(bank)
        if self.donors:
            if bank.dtype != np.uint8 or bank.ndim != 4 or len(bank) == 0 or bank.shape[1:] != (spec.FACE_SIZE, spec.FACE_SIZE, 3):
                return (f"a {self.name}-design bank holds donors, uint8 [K >= 1, {spec.FACE_SIZE}, {spec.FACE_SIZE}, 3]; "
                        f"got {bank.dtype} shape {list(bank.shape)}")
            return None
        if bank.dtype == np.uint8 or bank.ndim != 4 or len(bank) == 0 or bank.shape[2:] != (4, 1) or not np.all(np.isfinite(bank)):
            return (f"a {self.name}-design bank holds appearance codes, finite float32 [K >= 1, C_app, 4, 1]; "
                    f"got {bank.dtype} shape {list(bank.shape)}")
        return None

    def bank_for_serving(self, bank: np.ndarray) -> np.ndarray:
        """``bank`` as the pipeline keeps it (donors stay uint8, codes become float32).

        Raises:
            ValueError: naming what the bank should be (:meth:`bank_problem`).
        """
        problem = self.bank_problem(bank)
        if problem:
            raise ValueError(problem)
        return np.asarray(bank) if self.donors else np.asarray(bank, np.float32)


DONOR = Design("donor", bank_dtype="uint8", identity_spatial=False, appearance_encoder=False, donor_region=True,
               make_appearance=_donor_appearance)
PAPER = Design("paper", bank_dtype="float32", identity_spatial=True, appearance_encoder=True, donor_region=False)
DESIGNS = {design.name: design for design in (DONOR, PAPER)}


def design_named(name: str) -> Design:
    """The design called ``name``.

    Raises:
        ValueError: for another name, listing the designs.
    """
    if name not in DESIGNS:
        raise ValueError(f"model design must be one of {', '.join(DESIGNS)}, got {name!r}")
    return DESIGNS[name]


def design_of_bank(bank: np.ndarray) -> Design:
    """The design a bank was made for, for repositories exported before their config named it (the dtype told)."""
    return DONOR if np.asarray(bank).dtype == np.uint8 else PAPER
