"""The CholecT45 and CholecT50 plugins on synthesized look-alikes: splits, labels, metrics, checks, a tiny run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.errors import ConfigError, DataError
from plugins.datasets.cholect45 import CholecT45
from plugins.datasets.cholect50 import CholecT50

# docs/protocols.md section 2, spelled out.
FOLD = {1: [79, 2, 51, 6, 25, 14, 66, 23, 50], 2: [80, 32, 5, 15, 40, 47, 26, 48, 70],
        3: [31, 57, 36, 18, 52, 68, 10, 8, 73], 4: [42, 29, 60, 27, 65, 75, 22, 49, 12],
        5: [78, 43, 62, 35, 74, 1, 56, 4, 13]}
EXTRA = {1: 111, 2: 96, 3: 103, 4: 110, 5: 92}


def vids(numbers) -> tuple[str, ...]:
    return tuple(f"VID{n:02d}" for n in numbers)


@pytest.fixture
def t45_root(synthesized) -> Path:
    return synthesized(CholecT45)


@pytest.fixture
def t50_root(synthesized) -> Path:
    return synthesized(CholecT50)


@pytest.fixture
def t45_copy(t45_root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(t45_root, tmp_path / "copy"))


@pytest.fixture
def t50_copy(t50_root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(t50_root, tmp_path / "copy"))


def test_listing_the_plugins_imports_nothing_heavy() -> None:
    code = ("import sys, plugins.datasets.cholect45 as a, plugins.datasets.cholect50 as b; "
            "names = [s.name for s in a.sdbench_datasets() + b.sdbench_datasets()]; "
            "print(sorted({'torch', 'PIL', 'av'} & set(sys.modules)), names)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.stdout.strip() == "[] ['cholect45', 'cholect50']"


def test_synthesized_cholect45_has_every_official_video_and_a_clean_check(t45_root: Path) -> None:
    dataset = CholecT45({"root": str(t45_root)})
    index = dataset.index()
    assert set(index.videos) == set(vids(n for fold in FOLD.values() for n in fold))
    assert all(3 <= len(v) <= 4 and v.labels.shape[1] == 100 for v in index.videos.values())
    assert dataset.check() == []


def test_cholect45_cv_folds_follow_the_official_table(t45_root: Path) -> None:
    splits = CholecT45({"root": str(t45_root)}).splits()
    assert [s.name for s in splits] == ["fold1", "fold2", "fold3", "fold4", "fold5"]
    fold1 = splits[0]
    assert fold1.test == vids([79, 2, 51, 6, 25, 14, 66, 23, 50])
    assert fold1.train + fold1.val == vids(FOLD[2] + FOLD[3] + FOLD[4] + FOLD[5])
    assert fold1.val == vids([74, 1, 56, 4, 13])
    fold5 = splits[4]
    assert fold5.test == vids(FOLD[5])
    assert fold5.val == vids([65, 75, 22, 49, 12])
    assert fold5.train == vids(FOLD[1] + FOLD[2] + FOLD[3] + [42, 29, 60, 27])
    subset = CholecT45({"root": str(t45_root), "folds": [3, 1]}).splits()
    assert [s.name for s in subset] == ["fold1", "fold3"]


def test_cholect50_cv_adds_one_video_per_fold(t50_root: Path) -> None:
    splits = CholecT50({"root": str(t50_root)}).splits()
    for k, split in enumerate(splits, 1):
        assert split.test == vids(FOLD[k] + [EXTRA[k]])
    fold1 = splits[0]
    assert fold1.train + fold1.val == vids(FOLD[2] + [96] + FOLD[3] + [103] + FOLD[4] + [110] + FOLD[5] + [92])
    assert fold1.val == vids([1, 56, 4, 13, 92])
    assert len(CholecT50({"root": str(t50_root)}).index().videos) == 50


def test_challenge_and_rdv_splits(t50_root: Path) -> None:
    (challenge,) = CholecT50({"root": str(t50_root), "protocol": "challenge"}).splits()
    assert challenge.val == vids([5, 18, 36, 65, 74])
    assert challenge.test == vids([92, 96, 103, 110, 111])
    all45 = {n for fold in FOLD.values() for n in fold}
    assert set(challenge.train) == set(vids(all45 - {5, 18, 36, 65, 74})) and len(challenge.train) == 40
    (rdv,) = CholecT50({"root": str(t50_root), "protocol": "rdv"}).splits()
    assert rdv.val == vids([8, 12, 29, 50, 78])
    assert rdv.test == vids([6, 51, 10, 73, 14, 74, 32, 80, 42, 111])
    rest = all45 | set(EXTRA.values())
    assert set(rdv.train) == set(vids(rest - {8, 12, 29, 50, 78, 6, 51, 10, 73, 14, 74, 32, 80, 42, 111}))
    assert len(rdv.train) == 35


def test_challenge_on_cholect45_explains_that_it_needs_cholect50(t45_root: Path) -> None:
    with pytest.raises(ConfigError, match="VID111.*not part of cholect45.*cholect50"):
        CholecT45({"root": str(t45_root), "protocol": "challenge"})


@pytest.mark.parametrize("options, message", [({"colour": 1}, "colour"), ({"protocol": "x"}, "protocol"),
                                              ({"targets": "verbs"}, "targets"), ({"folds": [6]}, "folds"),
                                              ({"protocol": "rdv", "folds": [1]}, "folds")])
def test_bad_options_are_config_errors_naming_them(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CholecT50(options)


def test_targets_all_gives_131_columns_matching_the_component_files(t45_root: Path) -> None:
    index = CholecT45({"root": str(t45_root), "targets": "all"}).index()
    assert index.num_classes == 131 and index.class_names[100] == "instrument:grasper"
    video = index.videos["VID79"]
    for component, start, width in (("instrument", 100, 6), ("verb", 106, 10), ("target", 116, 15)):
        table = np.loadtxt(t45_root / component / "VID79.txt", delimiter=",", dtype=np.int64, ndmin=2)
        assert np.array_equal(video.labels[:, start:start + width], table[:, 1:])


def test_cholect50_binarises_instances_and_derives_components(t50_copy: Path) -> None:
    document = json.loads((t50_copy / "labels" / "VID01.json").read_text())
    grasper_retract_gallbladder = [17, 0, 1, 0.1, 0.1, 0.2, 0.2, 1, 0, 1, 0.1, 0.1, 0.2, 0.2, 3]
    document["annotations"]["0"] = [grasper_retract_gallbladder, grasper_retract_gallbladder]
    document["annotations"]["1"] = [[-1] * 14 + [2]]
    (t50_copy / "labels" / "VID01.json").write_text(json.dumps(document))
    labels = CholecT50({"root": str(t50_copy), "targets": "all"}).index().videos["VID01"].labels
    assert labels.shape[1] == 131
    assert np.flatnonzero(labels[0]).tolist() == [17, 100 + 0, 106 + 1, 116 + 0]
    assert labels[1].sum() == 0


def test_evaluate_reports_every_component_and_drops_null_triplets_for_the_challenge(t50_root: Path) -> None:
    labels = np.zeros((4, 131), np.uint8)
    labels[[0, 1], 17] = 1
    labels[[2, 3], 94] = 1
    probs = np.zeros((4, 131))
    probs[:, 17] = [0.9, 0.8, 0.1, 0.1]
    probs[:, 94] = [0.9, 0.9, 0.1, 0.1]  # null triplet ranked wrong: AP 0.5
    video_ids = np.zeros(4, np.int64)
    cv = CholecT50({"root": str(t50_root)}).evaluate(labels, probs, video_ids)
    assert set(cv) == {"mAP_i", "mAP_v", "mAP_t", "mAP_iv", "mAP_it", "mAP_ivt"}
    assert cv["mAP_ivt"] == pytest.approx(0.75)
    challenge = CholecT50({"root": str(t50_root), "protocol": "challenge"})
    assert challenge.primary_metric == "mAP_ivt"
    assert challenge.evaluate(labels, probs, video_ids)["mAP_ivt"] == pytest.approx(1.0)


def test_fingerprint_changes_with_labels_and_options(t45_copy: Path) -> None:
    before = CholecT45({"root": str(t45_copy)}).fingerprint()
    assert CholecT45({"root": str(t45_copy), "targets": "all"}).fingerprint() != before
    with (t45_copy / "triplet" / "VID01.txt").open("a") as file:
        file.write("9" + ",0" * 100 + "\n")
    assert CholecT45({"root": str(t45_copy)}).fingerprint() != before


def test_check_on_a_broken_cholect45_reports_every_problem(t45_copy: Path) -> None:
    lines = (t45_copy / "triplet" / "VID02.txt").read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0]  # 100 columns
    lines[2] = lines[2][:-1] + "2"  # non-binary
    (t45_copy / "triplet" / "VID02.txt").write_text("\n".join(lines) + "\n")
    (t45_copy / "data" / "VID06" / "000000.png").unlink()
    (t45_copy / "triplet" / "VID50.txt").unlink()
    shutil.copy(t45_copy / "data" / "VID01" / "000000.png", t45_copy / "data" / "VID01" / "000099.png")
    dataset = CholecT45({"root": str(t45_copy)})
    problems = dataset.check()
    assert len(problems) == 5, problems
    text = "\n".join(problems)
    assert f"{t45_copy / 'triplet' / 'VID02.txt'}, line 2: expected 101 comma-separated columns" in text
    assert "found 100" in text
    assert f"{t45_copy / 'triplet' / 'VID02.txt'}, line 3: column 101: label 2 is out of range 0-1" in text
    assert (f"video VID06: 1 labelled frame of {t45_copy / 'triplet' / 'VID06.txt'} without an image file in "
            f"{t45_copy / 'data' / 'VID06'} "
            "(first: 000000.png)") in text
    assert "VID50 (fold1 test) is absent" in text and str(t45_copy / "triplet" / "VID50.txt") in text
    assert (f"video VID01: 1 image file without a label in {t45_copy / 'triplet' / 'VID01.txt'} "
            "(first: 000099.png; index() leaves them out)") in text
    with pytest.raises(DataError, match="line 2: expected 101"):
        dataset.index()


def test_check_reports_component_files_that_disagree_with_the_triplets(t45_copy: Path) -> None:
    path = t45_copy / "verb" / "VID04.txt"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    problems = CholecT45({"root": str(t45_copy), "targets": "all"}).check()
    assert len(problems) == 1 and str(path) in problems[0] and "expected the frames of the triplet file" in problems[0]


def test_check_on_a_broken_cholect50_reports_every_problem(t50_copy: Path) -> None:
    (t50_copy / "labels" / "VID02.json").write_text("{not json")
    document = json.loads((t50_copy / "labels" / "VID06.json").read_text())
    document["annotations"]["1"] = [[17, 0, 1]]
    (t50_copy / "labels" / "VID06.json").write_text(json.dumps(document))
    document = json.loads((t50_copy / "labels" / "VID14.json").read_text())
    del document["annotations"]
    (t50_copy / "labels" / "VID14.json").write_text(json.dumps(document))
    (t50_copy / "videos" / "VID25" / "000000.png").unlink()
    (t50_copy / "labels" / "VID111.json").unlink()
    problems = CholecT50({"root": str(t50_copy)}).check()
    assert len(problems) == 5, problems
    text = "\n".join(problems)
    assert f"{t50_copy / 'labels' / 'VID02.json'}: invalid JSON" in text
    assert f"{t50_copy / 'labels' / 'VID06.json'}, frame '1': instance 0: expected 15 numbers, found 3" in text
    assert f"{t50_copy / 'labels' / 'VID14.json'}: expected keys" in text and "missing annotations" in text
    assert (f"video VID25: 1 labelled frame of {t50_copy / 'labels' / 'VID25.json'} without an image file in "
            f"{t50_copy / 'videos' / 'VID25'} (first: 000000.png)") in text
    assert "VID111 (fold1 test) is absent" in text
    with pytest.raises(DataError, match="VID02.json: invalid JSON"):
        CholecT50({"root": str(t50_copy)}).index()


def test_availability_explains_missing_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SDBENCH_CHOLECT45_ROOT", raising=False)
    assert "SDBENCH_CHOLECT45_ROOT" in CholecT45().availability()
    assert "does not exist" in CholecT45({"root": str(tmp_path / "nowhere")}).availability()
    assert f"no triplet/ folder under {tmp_path}" in CholecT45({"root": str(tmp_path)}).availability()
    monkeypatch.setenv("SDBENCH_CHOLECT50_ROOT", str(tmp_path))
    assert f"no labels/ folder under {tmp_path}" in CholecT50().availability()
    assert CholecT50().check() == [CholecT50().availability()]


TINY = """
image_size: 32
teacher: {{epochs: 2, batch_size: 32}}
student: {{epochs: 1, batch_size: 32}}
dataset_options:
  {name}: {{root: {root}, folds: [1]}}
"""


@pytest.mark.parametrize("name", ["cholect45", "cholect50"])
def test_tiny_run_through_the_runner(name: str, t45_root: Path, t50_root: Path, tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.format(name=name, root=t45_root if name == "cholect45" else t50_root))
    out = tmp_path / "run"
    assert main(["run", "--datasets", name, "--strategies", "hard,iee", "--seeds", "0", "--config", str(config),
                 "--out", str(out), "--quiet"]) == 0
    results = pd.read_csv(out / "results.csv")
    primary = results[results["primary"]]
    assert set(primary["dataset"]) == {name} and set(primary["strategy"]) == {"hard", "iee"}
    assert primary["value"].between(0, 1).all()
