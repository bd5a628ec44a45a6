"""Malformed input (issue 12, item 6): each damage gives one clear message through ``bench data check`` and
through ``index()``, never a traceback from inside a library or silently wrong numbers."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from harness.cli import main
from harness.errors import DataError, SdbenchError
from harness.system import atomic, faults
from plugins.datasets.autolaparo import AutoLaparo
from plugins.datasets.cholec80 import Cholec80
from plugins.datasets.cholect45 import CholecT45
from plugins.datasets.cholect50 import CholecT50
from plugins.datasets.esad import Esad

NAMES = {CholecT45: "cholect45", CholecT50: "cholect50", Cholec80: "cholec80", AutoLaparo: "autolaparo",
         Esad: "esad"}
Damage = Callable[[Path], Path]
"""Damages a copy of a look-alike in place; returns the file it damaged."""


@pytest.fixture
def copy_of(synthesized, tmp_path: Path) -> Callable[[type], Path]:
    """``copy_of(DatasetClass)``: a fresh copy of that dataset's session look-alike, free to corrupt."""
    return lambda dataset_class: Path(shutil.copytree(synthesized(dataset_class), tmp_path / "copy"))


def assert_reported(dataset_class: type, root: Path, message: str, capsys: pytest.CaptureFixture,
                    index: bool = True) -> None:
    """``message`` is among the problems that ``bench data check`` prints, and what ``index()`` raises."""
    capsys.readouterr()
    assert main(["data", "check", NAMES[dataset_class], "--root", str(root)]) == 1
    assert message in capsys.readouterr().out
    if index:
        with pytest.raises(DataError, match=re.escape(message)):
            dataset_class({"root": str(root)}).index()


def write(relative: str, content: str | bytes) -> Damage:
    def damage(root: Path) -> Path:
        path = root / relative
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path
    return damage


def edit_line(relative: str, line: int, edit: Callable[[str], str]) -> Damage:
    """Replace 1-based ``line`` of a text file by ``edit(line)``."""
    def damage(root: Path) -> Path:
        path = root / relative
        lines = path.read_text().splitlines()
        lines[line - 1] = edit(lines[line - 1])
        path.write_text("\n".join(lines) + "\n")
        return path
    return damage


def set_first_field(relative: str, line: int, value: str, separator: str) -> Damage:
    return edit_line(relative, line, lambda text: value + separator + text.split(separator, 1)[1])


def edit_json(video: str, edit: Callable[[dict], str]) -> Damage:
    """Rewrite ``labels/<video>.json`` of a CholecT50 copy as the text ``edit(document)`` returns."""
    def damage(root: Path) -> Path:
        path = root / "labels" / f"{video}.json"
        path.write_text(edit(json.loads(path.read_text())))
        return path
    return damage


def with_annotations(pairs: str) -> Callable[[dict], str]:
    """The document with its annotations replaced by the JSON object text ``{pairs}`` (duplicates kept)."""
    def edit(document: dict) -> str:
        document["annotations"] = "@"
        return json.dumps(document).replace('"@"', "{" + pairs + "}")
    return edit


def instance_value(position: int, value: object) -> Callable[[dict], str]:
    """The document with ``value`` at ``position`` of frame 0's first instance."""
    def edit(document: dict) -> str:
        document["annotations"]["0"][0][position] = value
        return json.dumps(document)
    return edit


def instance_text(position: int, text: str) -> Callable[[dict], str]:
    """Like :func:`instance_value`, with the JSON text ``text`` (which ``json.dumps`` would not write)."""
    return lambda document: instance_value(position, "@")(document).replace('"@"', text)


T45 = "triplet/VID01.txt"
T45_EMPTY = "the file is empty; expected one row per frame: the frame number, then 100 comma-separated 0/1 labels"
T50 = "labels/VID01.json"
C80 = "phase_annotations/video01-phase.txt"
AL = "labels/label_01.txt"
ESAD = "train/set1/RARP1_frame_5.txt"
INSTANCE = "[17, 0, 1, 0.1, 0.1, 0.2, 0.2, 1, 0, 1, 0.1, 0.1, 0.2, 0.2, 3]"
OUT_OF_INT64 = "is out of range 0-9223372036854775807"

CASES = {
    # 1. empty label files
    "t45 empty": (CholecT45, write(T45, ""), ": " + T45_EMPTY),
    "t45 blank": (CholecT45, write(T45, "\n \n"), ": " + T45_EMPTY),
    "t45 empty dict": (CholecT45, write("dict/triplet.txt", ""),
                       ": the file is empty; expected 'ID:instrument,verb,target' lines"),
    "t50 empty": (CholecT50, write(T50, ""),
                  ": the file is empty; expected a JSON object with keys video, fps, num_frames"),
    "t50 no frames": (CholecT50, edit_json("VID01", with_annotations("")),
                      ": expected 'annotations' to map frame ids to instance lists, found an empty object"),
    "cholec80 empty": (Cholec80, write(C80, ""), ": the file is empty; expected the header 'Frame<TAB>Phase', "
                                                 "then one '<frame><TAB><phase name>' line per frame"),
    "cholec80 header only": (Cholec80, write(C80, "Frame\tPhase\n"),
                             ": no '<frame><TAB><phase name>' line after the header; expected one per frame"),
    "autolaparo empty": (AutoLaparo, write(AL, "\n"), ": the file is empty; expected a header line"),
    "esad empty names": (Esad, write("train/obj.names", ""),
                         ": the file is empty; expected the class names, one a line"),
    # 2. duplicate CholecT50 frame keys, spelled differently or alike (a dict keeps only the last)
    "t50 duplicate key": (CholecT50, edit_json("VID01", with_annotations(f'"7": [{INSTANCE}], "007": [{INSTANCE}]')),
                          ": frame keys '7' and '007' both name frame 7; expected one entry per frame"),
    "t50 repeated key": (CholecT50, edit_json("VID01", with_annotations(f'"0": [{INSTANCE}], "0": [{INSTANCE}]')),
                         ": frame keys '0' and '0' both name frame 0"),
    # 3. NaN and Infinity, which Python's json reads unless told not to; 1e400, which it reads as inf
    "t50 nan": (CholecT50, edit_json("VID01", instance_text(2, "NaN")),
                ": found NaN, which is not a JSON number; expected finite numbers"),
    "t50 infinity": (CholecT50, edit_json("VID01", instance_text(3, "-Infinity")),
                     ": found -Infinity, which is not a JSON number"),
    "t50 1e400": (CholecT50, edit_json("VID01", instance_text(2, "1e400")),
                  ": number: expected a finite decimal number, found '1e400'"),
    # 4. digits that int() accepts but a label file must not hold
    "t45 arabic-indic frame": (CholecT45, set_first_field(T45, 2, "\u0661", ","),
                               ", line 2: column 1: frame number: expected ASCII digits, found '\u0661'"),
    "t45 full-width label": (CholecT45, edit_line(T45, 1, lambda t: t[:-1] + "\uff11"),
                             ", line 1: column 101: label: expected ASCII digits, found '\uff11'"),
    "t45 dict id": (CholecT45, edit_line("dict/triplet.txt", 4, lambda t: "\u0663" + t[1:]),
                    ", line 4: expected 'ID:instrument,verb,target' with ID in 0-99, found '\u0663:"),
    "t50 arabic-indic key": (CholecT50, edit_json("VID01", with_annotations(f'"\u0663": [{INSTANCE}]')),
                             ", frame '\u0663': frame number (key): expected ASCII digits, found '\u0663'"),
    "cholec80 superscript frame": (Cholec80, set_first_field(C80, 3, "\u00b2", "\t"),
                                   ", line 3: frame number: expected ASCII digits, found '\u00b2'"),
    "autolaparo arabic-indic phase": (AutoLaparo, edit_line(AL, 2, lambda t: t.split()[0] + "\t\u0663"),
                                      ", line 2: unknown phase '\u0663'"),
    "esad arabic-indic class": (Esad, write(ESAD, "\u0663 0.5 0.5 0.1 0.1\n"),
                                ", line 1: class index: expected ASCII digits, found '\u0663'"),
    "esad full-width coordinate": (Esad, write(ESAD, "3 0.5 \uff10.5 0.1 0.1\n"),
                                   ", line 1: box coordinate: expected a finite decimal number, found '\uff10.5'"),
    "esad nan coordinate": (Esad, write(ESAD, "3 0.5 nan 0.1 0.1\n"),
                            ", line 1: box coordinate: expected a finite decimal number, found 'nan'"),
    # 5. numbers beyond what the arrays hold, or beyond the number of classes: said, never wrapped
    "t45 frame beyond int64": (CholecT45, set_first_field(T45, 1, str(2**64), ","),
                               f", line 1: column 1: frame number {2**64} {OUT_OF_INT64}"),
    "t45 label beyond 1": (CholecT45, edit_line(T45, 1, lambda t: t[:-1] + "256"),
                           ", line 1: column 101: label 256 is out of range 0-1"),
    "t50 key beyond int64": (CholecT50, edit_json("VID01", with_annotations(f'"{2**63}": [{INSTANCE}]')),
                             f"frame number (key) {2**63} {OUT_OF_INT64}"),
    "t50 ivt beyond classes": (CholecT50, edit_json("VID01", instance_value(0, 100)),
                               ", frame '0': instance 0: IVT must be -1 or an integer in 0-99, found 100"),
    "t50 ivt beyond int64": (CholecT50, edit_json("VID01", instance_value(0, 2**70)),
                             f": integer {2**70} {OUT_OF_INT64}"),
    "t50 5000 digits": (CholecT50, edit_json("VID01", instance_text(0, "9" * 5000)),
                        ": integer 999999999999999999999999999999... (5000 characters) is out of range"),
    "t50 boolean ivt": (CholecT50, edit_json("VID01", instance_value(0, True)),
                        ", frame '0': instance 0: IVT must be -1 or an integer in 0-99, found True"),
    "cholec80 frame beyond int64": (Cholec80, set_first_field(C80, 2, "9" * 30, "\t"),
                                    f", line 2: frame number {'9' * 30} {OUT_OF_INT64}"),
    "autolaparo phase beyond int64": (AutoLaparo, edit_line(AL, 2, lambda t: t.split()[0] + "\t" + str(2**64)),
                                      f", line 2: unknown phase '{2**64}'"),
    "esad class beyond uint8": (Esad, write(ESAD, "256 0.5 0.5 0.1 0.1\n"),
                                ", line 1: class index 256 is out of range 0-20"),
    # 6. bytes that are not UTF-8
    "t45 latin-1": (CholecT45, lambda root: _append_bytes(root / T45, b"# caf\xe9\n"),
                    "expected UTF-8 text, found byte 0xe9 at offset"),
    "t50 latin-1": (CholecT50, lambda root: _append_bytes(root / T50, b" \xff"),
                    ", line 1: expected UTF-8 text, found byte 0xff"),
    "cholec80 latin-1": (Cholec80, write(C80, b"Frame\tPhase\n0\tPr\xe9paration\n"),
                         ", line 2: expected UTF-8 text, found byte 0xe9 at offset 16 (invalid continuation byte)"),
    "autolaparo latin-1": (AutoLaparo, write(AL, b"\xfe\xffFrame\tPhase\n"),
                           ", line 1: expected UTF-8 text, found byte 0xfe at offset 0 (invalid start byte)"),
    "esad latin-1": (Esad, write(ESAD, b"3 0.5 0.5 0.1 0.1\n3 0.5 0.5 0.1 0.1 \xa0\n"),
                     ", line 2: expected UTF-8 text, found byte 0xa0 at offset 36"),
}


def _append_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(path.read_bytes() + data)
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_label_file_is_reported_by_check_and_index(case: str, copy_of, capsys) -> None:
    dataset_class, damage, message = CASES[case]
    root = copy_of(dataset_class)
    path = damage(root)
    assert_reported(dataset_class, root, str(path) + message if message.startswith((":", ",")) else message, capsys)


def test_cholect45_component_file_empty_with_targets_all(copy_of) -> None:
    root = copy_of(CholecT45)
    path = write("verb/VID04.txt", "")(root)
    message = f"{path}: the file is empty; expected one row per frame: the frame number, then 10 comma-separated"
    assert message in "\n".join(CholecT45({"root": str(root), "targets": "all"}).check())
    with pytest.raises(DataError, match=re.escape(message)):
        CholecT45({"root": str(root), "targets": "all"}).index()


def test_an_empty_esad_label_file_means_no_box(copy_of) -> None:
    root = copy_of(Esad)
    write(ESAD, "")(root)
    dataset = Esad({"root": str(root)})
    assert dataset.check() == []
    assert not dataset.index().videos["RARP1"].labels[0].any()


def test_esad_accepts_an_upper_case_extension(copy_of) -> None:
    root = copy_of(Esad)
    folder = root / "train" / "set1"
    (folder / "RARP1_frame_10.jpg").rename(folder / "RARP1_frame_10.JPG")
    (folder / "RARP1_frame_10.txt").rename(folder / "RARP1_frame_10.TXT")
    (folder / "RARP1_frame_15.jpg").rename(folder / "RARP1_frame_15.Jpg")
    dataset = Esad({"root": str(root)})
    assert dataset.check() == []
    video = dataset.index().videos["RARP1"]
    assert video.frame_ids.tolist() == [5, 10, 15, 20, 25, 30]
    assert video.source.paths[1:3] == (str(folder / "RARP1_frame_10.JPG"), str(folder / "RARP1_frame_15.Jpg"))
    boxes = {int(line.split()[0]) for line in (folder / "RARP1_frame_10.TXT").read_text().splitlines() if line}
    assert set(np.flatnonzero(video.labels[1])) == boxes


def test_esad_refuses_two_images_differing_only_in_case(copy_of, capsys) -> None:
    root = copy_of(Esad)
    folder = root / "train" / "set1"
    shutil.copy(folder / "RARP1_frame_10.jpg", folder / "RARP1_frame_10.JPG")
    message = (f"{folder}: RARP1_frame_10.JPG and RARP1_frame_10.jpg differ only in the case of their extension; "
               "expected one .jpg file per frame, keep one of them")
    assert_reported(Esad, root, message, capsys)
    assert "without an image file" not in "\n".join(Esad({"root": str(root)}).check())


def test_check_counts_frames_without_labels_and_labels_without_frames(copy_of, capsys) -> None:
    root = copy_of(CholecT45)
    frames = root / "data" / "VID04"
    (frames / "000001.png").unlink()
    (frames / "000002.png").unlink()
    shutil.copy(frames / "000000.png", frames / "000099.png")
    message = (f"video VID04: 2 labelled frames of {root / 'triplet' / 'VID04.txt'} without an image file in {frames} "
               "(first: 000001.png); "
               f"1 image file without a label in {root / 'triplet' / 'VID04.txt'} (first: 000099.png; "
               "index() leaves them out)")
    assert_reported(CholecT45, root, message, capsys)


@pytest.mark.parametrize("dataset_class, folder, label_file", [(CholecT45, "data", T45), (CholecT50, "videos", T50)])
def test_index_leaves_out_images_without_a_label_and_says_so(dataset_class: type, folder: str, label_file: str,
                                                            copy_of, capsys, caplog: pytest.LogCaptureFixture) -> None:
    root = copy_of(dataset_class)
    frames = root / folder / "VID01"
    shutil.copy(frames / "000000.png", frames / "000777.png")
    shutil.copy(frames / "000000.png", frames / "000778.png")
    with caplog.at_level(logging.WARNING, logger="sdbench"):
        index = dataset_class({"root": str(root)}).index()
    assert 777 not in index.videos["VID01"].frame_ids
    message = f"video VID01: 2 image files without a label in {root / label_file}"
    assert any(r.getMessage().startswith(message + " (first: 000777.png") for r in caplog.records)
    assert_reported(dataset_class, root, message, capsys, index=False)


def test_esad_counts_label_files_without_an_image(copy_of, capsys) -> None:
    root = copy_of(Esad)
    folder = root / "train" / "set2"
    for frame in (900, 901):
        (folder / f"RARP3_frame_{frame}.txt").write_text("1 0.5 0.5 0.1 0.1\n")
    assert_reported(Esad, root, f"video RARP3 in {folder}: 2 label files without an image file "
                                "(first: RARP3_frame_900.txt)", capsys)


def test_esad_frame_number_beyond_int64(copy_of, capsys) -> None:
    root = copy_of(Esad)
    image = root / "train" / "set1" / f"RARP1_frame_{2**64}.jpg"
    shutil.copy(root / "train" / "set1" / "RARP1_frame_5.jpg", image)
    assert_reported(Esad, root, f"image {image}: frame number {2**64} {OUT_OF_INT64}", capsys)


KNOWN = "known points: batch, job-done, atomic-write, artifact-rename"


@pytest.mark.parametrize("value, wrong", [("batch:x", "the count 'x' is not a whole number of at least 1"),
                                          ("batch:0", "the count '0' is not a whole number of at least 1"),
                                          ("batch:\u0663", "the count '\u0663' is not a whole number"),
                                          ("nosuchpoint:1", "unknown point 'nosuchpoint'"),
                                          ("batch", "no ':<n>'")])
def test_malformed_kill_at_is_an_error_at_start_and_at_first_use(value: str, wrong: str, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SDBENCH_KILL_AT", value)
    message = f"SDBENCH_KILL_AT={value!r} is malformed ({wrong}"
    with pytest.raises(SdbenchError, match=re.escape(message) + r".*expected <point>:<n> with n >= 1; " + KNOWN):
        faults.kill_point("job-done")
    assert main(["plugins"]) == 2
    assert message in capsys.readouterr().err


def test_a_well_formed_kill_at_names_point_and_count(monkeypatch) -> None:
    monkeypatch.setenv("SDBENCH_KILL_AT", "artifact-rename:3")
    assert faults.kill_target() == ("artifact-rename", 3)
    faults.kill_point("batch")  # another point: no kill
    monkeypatch.delenv("SDBENCH_KILL_AT")
    assert faults.kill_target() is None


@pytest.mark.parametrize("code, reason", [(errno.ENOSPC, "the disk is full (ENOSPC)"),
                                          (errno.EDQUOT, "the disk quota is exceeded (EDQUOT)")])
@pytest.mark.parametrize("where", ["write", "fsync"])
def test_a_full_disk_while_writing_keeps_the_old_file_and_says_so(code: int, reason: str, where: str,
                                                                 tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "results.csv"
    path.write_text("finished before\n")

    def full(*_: object) -> None:
        raise OSError(code, os.strerror(code))

    if where == "fsync":
        monkeypatch.setattr(atomic.os, "fsync", full)
    message = (f"cannot write {path}: {reason}; the file is left as it was and everything finished before is kept; "
               "free some space")
    with pytest.raises(SdbenchError, match=re.escape(message)):
        atomic.write_with(path, full if where == "write" else lambda f: f.write("new\n"), "w")
    assert path.read_text() == "finished before\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_other_write_errors_pass_unchanged_and_the_rename_is_made_durable(tmp_path: Path, monkeypatch) -> None:
    def denied(_: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(PermissionError):
        atomic.write_with(tmp_path / "a.txt", denied, "w")
    assert list(tmp_path.iterdir()) == []
    synced = []
    monkeypatch.setattr(atomic, "fsync_directory", lambda directory: synced.append((directory, os.listdir(directory))))
    atomic.write_text(tmp_path / "a.txt", "done")
    assert synced == [(tmp_path, ["a.txt"])]
