# SPDX-License-Identifier: Apache-2.0
"""The designs described once (facecamo.design): the export records the served design, the engine reads it, and a
bank or a name that is not a design's is refused with what to fix."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from facecamo import spec
from facecamo.design import DESIGNS, DONOR, PAPER, design_named, design_of_bank
from facecamo.repository import RepositoryError, open_pipeline, read_parameters


def test_each_design_says_its_sizes_and_its_bank():
    assert DONOR.sizes(256) == {"C_id": 256, "H_id": 1, "W_id": 1, "C_app": 3, "H_app": 112, "W_app": 112}
    assert PAPER.sizes(64, 2048) == {"C_id": 64, "H_id": 28, "W_id": 28, "C_app": 2048, "H_app": 4, "W_app": 1}
    donors, codes = np.zeros((2, 112, 112, 3), np.uint8), np.ones((2, 8, 4, 1), np.float64)
    assert DONOR.bank_problem(donors) is None and PAPER.bank_problem(codes) is None
    assert PAPER.bank_for_serving(codes).dtype == np.float32 and DONOR.bank_for_serving(donors).dtype == np.uint8
    assert design_of_bank(donors) is DONOR and design_of_bank(codes) is PAPER
    with pytest.raises(ValueError, match=r"holds donors, uint8 \[K >= 1, 112, 112, 3\]; got float64"):
        DONOR.bank_for_serving(codes)
    with pytest.raises(ValueError, match="holds appearance codes"):
        PAPER.bank_for_serving(np.full((1, 8, 4, 1), np.nan, np.float32))
    with pytest.raises(ValueError, match="need the appearance encoder's channels"):
        PAPER.sizes(64)
    with pytest.raises(ValueError, match="one of donor, paper"):
        design_named("gan")
    assert set(DESIGNS) == {"donor", "paper"}


def test_the_networks_name_their_design(tiny_checkpoint):
    from training.weights import load_inference_net

    net, config, _ = load_inference_net(tiny_checkpoint)
    assert net.design is design_named(config.model.design)


def test_the_served_config_names_the_design_and_the_engine_reads_it(repository, tmp_path, portrait_rgb):
    """The export writes ``design`` beside the pipeline's settings; a repository exported before it did still opens
    (the bank's dtype tells); a config naming a design whose bank this is not is refused, saying to re-export."""
    config = repository / spec.ENSEMBLE / "config.pbtxt"
    assert read_parameters(config)["design"] == "donor"
    assert open_pipeline(repository).design is DONOR
    copy = tmp_path / "repository"
    shutil.copytree(repository, copy)
    copied = copy / spec.ENSEMBLE / "config.pbtxt"
    text = config.read_text()
    entry = re.compile(r'parameters \{\s*key: "design"\s*value: \{ string_value: "donor" \}\s*\}\n')
    assert entry.search(text)
    copied.write_text(entry.sub("", text))  # as exported before the config named its design
    older = open_pipeline(copy)
    assert older.design is DONOR and list(older.run(portrait_rgb).status) == [spec.STATUS_CAMOUFLAGED]
    copied.write_text(text.replace('string_value: "donor"', 'string_value: "paper"'))
    with pytest.raises(RepositoryError, match="holds appearance codes.*run `make export`"):
        open_pipeline(copy)
