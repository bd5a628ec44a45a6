"""``bench new-dataset NAME DIR``: a pip-installable dataset package that passes the dataset conformance kit.

The package registers one small working dataset (videos as folders of PNG frames, one CSV label file per
video, a fixed split, frame accuracy) through the ``sdbench`` entry-point group, with a ``synthesize`` that
writes a look-alike, and tests it with :class:`harness.kits.conformance.DatasetConformance`; its author replaces
the reader, the split and the metric with the dataset's own and keeps the tests. See ``docs/datasets.md``.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

from harness.kits.scaffold import PYPROJECT, write_package

MODULE = Template('''\
"""The '$name' dataset: videos as folders of image frames, one CSV label file per video (multi-class).

::

    classes.txt                  the class names, one a line: class i is line i + 1
    frames/<video>/000000.png    the frames of each video, named by their frame number
    labels/<video>.csv           header "frame,label", then one line per labelled frame: its number, its class

Replace the reader, the split and the metric with your dataset's own (its official protocol); keep
``synthesize`` writing a small look-alike in the same layout: ``pytest`` runs the sdbench dataset conformance
tests on it. Options: ``root`` (else ``$$$env``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from harness.api import (ConfigError, DataError, Dataset, DatasetSpec, FrameIndex, ImageFrames, Split, VideoFrames,
                         content_fingerprint, data_root, hookimpl, root_unavailable)
from plugins.datasets.parsing import FieldError, ascii_int, read_text

HEADER = "frame,label"
SPLIT = Split("default", train=("video01", "video02", "video03", "video04"), val=("video05", "video06"),
              test=("video07", "video08"))
"""The official split. Validation comes from the training side: the test videos never select anything."""
VIDEOS = SPLIT.train + SPLIT.val + SPLIT.test


@hookimpl
def sdbench_datasets() -> list[DatasetSpec]:
    return [DatasetSpec("$name", "videos of PNG frames with CSV frame labels (multi-class)", $cls)]


class $cls(Dataset):
    """Multi-class frame labels from CSV files, frames from PNG files, one split (see the module)."""

    name = "$name"
    task = "multiclass"
    primary_metric = "accuracy"
    root_env = "$env"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = dict(options or {})
        unknown = sorted(set(options) - {"root"})
        if unknown:
            raise ConfigError(f"dataset {self.name}: unknown options {unknown}; known: root")
        self.root = data_root(options, self.root_env)

    def availability(self) -> str | None:
        return root_unavailable(self.name, self.root, self.root_env)

    def splits(self) -> list[Split]:
        return [SPLIT]

    def index(self) -> FrameIndex:
        classes = self.class_names()
        videos = {}
        for video in VIDEOS:
            frame_ids, labels, problems = self._scan(video, classes)
            if problems:
                raise DataError(problems[0])
            images = tuple(str(self._image(video, frame)) for frame in frame_ids.tolist())
            videos[video] = VideoFrames(video, frame_ids, labels, ImageFrames(images))
        return FrameIndex(self.name, self.task, classes, videos)

    def evaluate(self, labels: np.ndarray, probs: np.ndarray, video_ids: np.ndarray) -> dict[str, float]:
        """Frame accuracy of the most probable class, a fraction. Use your dataset's official metric."""
        return {"accuracy": float(np.mean(np.asarray(probs).argmax(axis=1) == labels))}

    def fingerprint(self) -> str:
        """The bytes of the class list and every label file, the size of every frame (harness.data.fingerprint)."""
        root = self._root()
        labels = [root / "classes.txt"] + [self._label_file(video) for video in VIDEOS]
        return content_fingerprint(self.name, root, labels, sorted(root.glob("frames/*/*.png")), {})

    def check(self) -> list[str]:
        """Every problem: the class list, each label file (file, line, expected, found), missing frames."""
        if (reason := self.availability()) is not None:
            return [reason]
        try:
            classes = self.class_names()
        except DataError as exc:
            return [str(exc)]
        problems = []
        for video in VIDEOS:
            frame_ids, _, found = self._scan(video, classes)
            missing = [f for f in frame_ids.tolist() if not self._image(video, f).is_file()]
            if missing:
                found.append(f"{self._label_file(video)}: {len(missing)} of {len(frame_ids)} labelled frames have "
                             f"no image; expected {self._image(video, missing[0])}, found no such file")
            problems += found
        return problems

    @classmethod
    def synthesize(cls, directory: Path) -> None:
        """Every video of the split, 6 frames each: 16x16 PNGs coloured by their class, plus noise; deterministic."""
        from PIL import Image

        directory = Path(directory)
        classes = ("idle", "dissect", "suture")
        (directory / "labels").mkdir(parents=True, exist_ok=True)
        (directory / "classes.txt").write_text("".join(f"{name}\\n" for name in classes))
        colours = np.array([(200, 60, 60), (60, 200, 60), (60, 60, 200)])
        for number, video in enumerate(VIDEOS):
            rng = np.random.default_rng(number)
            labels = rng.integers(len(classes), size=6)
            (directory / "frames" / video).mkdir(parents=True)
            for frame, label in enumerate(labels):
                pixels = np.clip(colours[label] + rng.integers(-20, 21, (16, 16, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(directory / "frames" / video / f"{frame:06d}.png")
            rows = "".join(f"{frame},{classes[label]}\\n" for frame, label in enumerate(labels))
            (directory / "labels" / f"{video}.csv").write_text(f"{HEADER}\\n{rows}")

    def class_names(self) -> tuple[str, ...]:
        path = self._root() / "classes.txt"
        if not path.is_file():
            raise DataError(f"{path}: expected the class names, one a line; found no such file")
        names = tuple(line.strip() for line in read_text(path).splitlines() if line.strip())
        if not names or len(set(names)) < len(names):
            raise DataError(f"{path}: expected distinct class names, one a line; found {list(names)}")
        return names

    def _root(self) -> Path:
        if (reason := self.availability()) is not None:
            raise DataError(f"dataset {self.name}: {reason}")
        return self.root

    def _label_file(self, video: str) -> Path:
        return self._root() / "labels" / f"{video}.csv"

    def _image(self, video: str, frame: int) -> Path:
        return self._root() / "frames" / video / f"{frame:06d}.png"

    def _scan(self, video: str, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Frame numbers and class indices of one label file's well-formed lines, and every problem in it."""
        path, empty = self._label_file(video), np.zeros(0, np.int64)
        if not path.is_file():
            return empty, empty, [f"{path}: expected the labels of video {video}; found no such file"]
        try:
            lines = read_text(path).splitlines()
        except DataError as exc:  # not UTF-8
            return empty, empty, [str(exc)]
        first = repr(lines[0]) if lines else "an empty file"
        problems = [] if lines[:1] == [HEADER] else [f"{path}, line 1: expected {HEADER!r}, found {first}"]
        frames, labels = [], []
        for number, line in enumerate(lines[1:], 2):
            text, _, label = line.partition(",")
            try:
                frame = ascii_int(text, "frame number")
            except FieldError as exc:
                problems.append(f"{path}, line {number}: {exc} in {line!r}")
                continue
            if label not in classes:
                problems.append(f"{path}, line {number}: expected a class of {', '.join(classes)}; found {label!r}")
            elif frames and frame <= frames[-1]:
                problems.append(f"{path}, line {number}: expected a frame after {frames[-1]}, found {frame}")
            else:
                frames.append(frame)
                labels.append(classes.index(label))
        if not frames and not problems:
            problems.append(f"{path}: expected one line per labelled frame after the header, found none")
        return np.array(frames, np.int64), np.array(labels, np.int64), problems
''')

TESTS = Template('''\
"""The sdbench dataset conformance tests on the '$name' look-alike, and check() naming every problem."""

from pathlib import Path

from harness.api import DatasetConformance

from $module import $cls


class Test$cls(DatasetConformance):
    dataset_name = "$name"
    label_file = "labels/video01.csv"


def test_check_names_the_file_line_expected_and_found(tmp_path: Path) -> None:
    $cls.synthesize(tmp_path)
    labels = tmp_path / "labels" / "video03.csv"
    lines = labels.read_text().splitlines()
    labels.write_text("\\n".join(lines[:2] + ["1,cut"] + lines[3:]) + "\\n")
    (tmp_path / "frames" / "video05" / "000002.png").unlink()
    assert $cls({"root": tmp_path}).check() == [
        f"{labels}, line 3: expected a class of idle, dissect, suture; found 'cut'",
        f"{tmp_path / 'labels' / 'video05.csv'}: 1 of 6 labelled frames have no image; expected "
        f"{tmp_path / 'frames' / 'video05' / '000002.png'}, found no such file",
    ]
''')

README = Template('''\
# sdbench-$name

A dataset for sdbench. Install it next to sdbench and it appears in `bench plugins`:

    pip install -e .
    bench plugins
    bench data synth $name /tmp/$name          # a small look-alike in the dataset's layout
    bench data check $name --root /tmp/$name
    bench run --datasets $name --data-root $name=/path/to/the/data

Test it (the sdbench dataset conformance tests, on the look-alike): `pytest`. The data root comes from
`dataset_options.$name.root` in a config file, `--data-root $name=PATH`, or `$$$env`.
''')


def env_var(name: str) -> str:
    """The data-root environment variable of dataset ``name``: ``SDBENCH_<NAME>_ROOT``."""
    return f"SDBENCH_{name.replace('-', '_').upper()}_ROOT"


def new_dataset_package(name: str, directory: Path, taken: list[str] | None = None) -> list[Path]:
    """Write the package for dataset ``name`` into ``directory`` (new or empty); return the files written."""
    templates = {"pyproject.toml": PYPROJECT, "$module/__init__.py": MODULE, "tests/test_$module.py": TESTS,
                 "README.md": README}
    fields = {"description": f"The '{name}' dataset for sdbench", "dependencies": '"sdbench", "numpy", "pillow"',
              "env": env_var(name)}
    return write_package("dataset", name, directory, taken, templates, fields)
