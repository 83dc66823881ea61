# SPDX-License-Identifier: Apache-2.0
"""`make prepare`'s engine on committed portraits laid out like LFW."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from tests.conftest import make_identity_folders
from training.prepare import main, prepare


def read_manifest(folder):
    with open(folder / "manifest.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_aligned_crops_manifest_and_identity_disjoint_split(tmp_path):
    data = make_identity_folders(tmp_path / "images", identities=6)
    cv2.imwrite(str(data / "congress_B000589" / "blank_0009.jpg"), np.full((200, 200, 3), 90, np.uint8))
    summary = prepare(data, tmp_path / "out", workers=1, test_fraction=0.5, seed=3)
    rows = read_manifest(tmp_path / "out")
    assert summary["faces"] == 18 and summary["no_face"] == 1 and len(rows) == 18
    assert set(rows[0]) == {"file", "identity", "label", "source", "split"}
    crop = cv2.imread(str(tmp_path / "out" / rows[0]["file"]))
    assert crop.shape == (112, 112, 3)
    train = {r["identity"] for r in rows if r["split"] == "train"}
    test = {r["identity"] for r in rows if r["split"] == "test"}
    assert train and test and not train & test
    assert sorted({int(r["label"]) for r in rows if r["split"] == "train"}) == list(range(len(train)))
    no_face = (tmp_path / "out" / "no_face.csv").read_text()
    assert "blank_0009.jpg" in no_face


def test_rerun_skips_what_is_done(tmp_path):
    data = make_identity_folders(tmp_path / "images", identities=2)
    first = prepare(data, tmp_path / "out", workers=1)
    again = prepare(data, tmp_path / "out", workers=1)
    assert first["processed_this_run"] == 6 and again["processed_this_run"] == 0
    assert again["faces"] == first["faces"] == 6
    assert len((tmp_path / "out" / "progress.jsonl").read_text().splitlines()) == 6
    with pytest.raises(ValueError, match="prepared with the dlib68 landmark model"):
        prepare(data, tmp_path / "out", workers=1, landmark_model="dlib5")  # two alignments must not mix in one folder


def test_lfw_split_files_are_used(tmp_path):
    data = make_identity_folders(tmp_path / "lfw" / "images", identities=3)
    names = sorted(p.name for p in data.iterdir())
    (tmp_path / "lfw" / "peopleDevTrain.txt").write_text(f"2\n{names[0]}\t3\n{names[1]}\t3\n")
    (tmp_path / "lfw" / "peopleDevTest.txt").write_text(f"1\n{names[2]}\t3\n")
    summary = prepare(data, tmp_path / "out", workers=1)
    assert summary["split_source"].startswith("LFW")
    split_of = {r["identity"]: r["split"] for r in read_manifest(tmp_path / "out")}
    assert split_of == {names[0]: "train", names[1]: "train", names[2]: "test"}


def test_two_worker_processes_give_the_same_manifest(tmp_path):
    data = make_identity_folders(tmp_path / "images", identities=2)
    prepare(data, tmp_path / "one", workers=1)
    prepare(data, tmp_path / "two", workers=2)

    def strip(rows):
        return [(r["identity"], r["split"], r["label"], r["file"]) for r in rows]

    assert strip(read_manifest(tmp_path / "one")) == strip(read_manifest(tmp_path / "two"))


def test_missing_and_empty_folders_get_clear_errors(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["--data", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no images" in capsys.readouterr().err


def test_pack_training_keeps_the_training_rows_with_their_landmarks(prepared, tmp_path):
    """What travels to a leased GPU: JPEG crops, a manifest of the training rows and their landmarks, readable by
    training's own dataset class."""
    from tools.pack_training import pack
    from training.data import FaceDataset

    count = pack(prepared, tmp_path / "gpu", quality=80, teacher=None)
    original = FaceDataset(prepared, "train", progress=False)
    packed = FaceDataset(tmp_path / "gpu" / "lfw", "train", progress=False)
    assert count == len(original) == len(packed) and packed.num_identities == original.num_identities
    np.testing.assert_allclose(packed.landmarks, original.landmarks, atol=1e-3)
    assert np.abs(packed.images.float() - original.images.float()).mean() < 4.0  # JPEG at quality 80
