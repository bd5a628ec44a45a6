"""``bench data synth|check|info`` and ``--data-root``."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import _data_roots, main
from harness.errors import SdbenchError


def test_synth_check_info_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture):
    target = tmp_path / "phases"
    assert main(["data", "synth", "demo-phases", str(target)]) == 0
    assert (target / "phase_annotations" / "video01-phase.txt").is_file()
    assert main(["data", "check", "demo-phases", "--root", str(target)]) == 0
    assert "demo-phases: no problems found" in capsys.readouterr().out
    assert main(["data", "info", "demo-phases", "--root", str(target)]) == 0
    out = capsys.readouterr().out
    assert "12 videos" in out and "CalotTriangleDissection" in out and "| default | test" in out


def test_synth_refuses_a_non_empty_directory(tmp_path: Path, capsys: pytest.CaptureFixture):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["data", "synth", "demo-triplets", str(tmp_path)]) == 2
    assert "is not empty" in capsys.readouterr().err


def test_check_reports_problems_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture):
    target = tmp_path / "triplets"
    assert main(["data", "synth", "demo-triplets", str(target)]) == 0
    label_file = target / "triplet" / "VID03.txt"
    lines = label_file.read_text().splitlines()
    lines[4] = lines[4].rsplit(",", 1)[0]
    label_file.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(["data", "check", "demo-triplets", "--root", str(target)]) == 1
    out = capsys.readouterr().out
    assert "VID03.txt" in out and "line 5" in out and "1 problem(s)" in out


def test_data_root_flags_become_dataset_options():
    assert _data_roots(["cholec80=/data/c80", "esad=/data/esad"]) == {
        "cholec80": {"root": "/data/c80"}, "esad": {"root": "/data/esad"}}
    with pytest.raises(SdbenchError, match="NAME=PATH"):
        _data_roots(["cholec80"])
