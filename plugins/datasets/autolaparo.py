"""AutoLaparo task 1: surgical workflow (phase) recognition in 21 laparoscopic hysterectomy videos.

::

    videos/01.mp4 ... videos/21.mp4   the recordings (25 fps)
    labels/label_01.txt ...           a header line, then "frame phase" per second: 1-based frame, phase 1-7

The release notes of task 1 (found by search) list 21 videos (.mp4), 21 phase annotations at 1 fps and the
seven phase names below. The file names ``videos/XX.mp4`` are an **assumption** (the notes name the file
types, not the names), as is the header, whose content is not checked beyond not being a data line. Frames
are decoded from the videos at 1 fps by timestamp: second k (0-based) is labelled by annotation frame k+1.
Labels beyond the video's end are dropped and logged, as for Cholec80.

Split of the benchmark paper: videos 1-10 train, 11-14 validation, 15-21 test.

Metrics as Cholec80: strict video-wise scores, and relaxed-boundary scores (``relaxed_*``) of the
script-exact variant of Cholec80's ``Evaluate.m`` with its 10 s window. Its phase-specific allowances were
written for Cholec80's phase order and are applied unchanged by phase index: the end of phases 4-7 also
accepts a prediction two phases later, the start of phases 6 and 7 one or two phases earlier. They have no
meaning for hysterectomy phases; compare relaxed AutoLaparo numbers only with numbers computed the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.api import DatasetSpec, Split, hookimpl
from plugins.datasets.cholec80 import (PhaseVideoDataset, encode_video, scan_annotation, synthetic_frames,
                                       synthetic_timeline)
from plugins.datasets.parsing import FieldError, ascii_int

PHASES = ("Preparation", "Dividing Ligament and Peritoneum", "Dividing Uterine Vessels and Ligament",
          "Transecting the Vagina", "Specimen Removal", "Suturing", "Washing")
VIDEO_FPS = 25
NUM_VIDEOS = 21
_SPLIT = ((1, 10), (11, 14), (15, 21))


@hookimpl
def sdbench_datasets() -> list[DatasetSpec]:
    return [DatasetSpec("autolaparo", "AutoLaparo task 1 phases (21 hysterectomy videos, 7 phases)", AutoLaparo)]


def _phase_number(text: str) -> int | None:
    """0-based phase of a 1-based phase number, None when it is not one of 1-7 in ASCII digits."""
    try:
        return ascii_int(text, "phase", maximum=len(PHASES), minimum=1) - 1
    except FieldError:
        return None


def _is_header(fields: list[str]) -> bool:
    """Not a data line: its first field is not a frame number in ASCII digits."""
    return bool(fields) and not (fields[0].isascii() and fields[0].isdigit())


class AutoLaparo(PhaseVideoDataset):
    """AutoLaparo task 1 phases at 1 fps. Options: ``root`` (else ``$SDBENCH_AUTOLAPARO_ROOT``)."""

    name = "autolaparo"
    root_env = "SDBENCH_AUTOLAPARO_ROOT"
    class_names = PHASES

    def videos(self) -> list[str]:
        return [f"{number:02d}" for number in range(1, NUM_VIDEOS + 1)]

    def annotation_path(self, video: str) -> Path:
        return self._root() / "labels" / f"label_{video}.txt"

    def video_path(self, video: str) -> Path:
        return self._root() / "videos" / f"{video}.mp4"

    def scan_labels(self, video: str) -> tuple[np.ndarray, list[str]]:
        known = ", ".join(f"{i} ({name})" for i, name in enumerate(PHASES, 1))
        return scan_annotation(self.annotation_path(video), _is_header, "a header line (not 'frame phase')",
                               first_frame=1, phase_of=_phase_number, known=known, what="phase 1-7")

    def splits(self) -> list[Split]:
        train, val, test = (tuple(f"{n:02d}" for n in range(a, b + 1)) for a, b in _SPLIT)
        return [Split("1-10/11-14/15-21", train, val, test)]

    @classmethod
    def synthesize(cls, directory: Path) -> None:
        """All 21 videos, each 4-6 s of 16x16 H.264 at 25 fps with a colour per phase, and their 1-fps labels."""
        directory = Path(directory)
        for number in range(1, NUM_VIDEOS + 1):
            rng = np.random.default_rng([2022, number])
            per_frame = synthetic_timeline(rng, int(rng.integers(4, 7)) * VIDEO_FPS)
            seconds = per_frame[::VIDEO_FPS]
            encode_video(directory / "videos" / f"{number:02d}.mp4", synthetic_frames(rng, per_frame), VIDEO_FPS)
            rows = "".join(f"{second}\t{phase + 1}\n" for second, phase in enumerate(seconds, 1))
            path = directory / "labels" / f"label_{number:02d}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("Frame\tPhase\n" + rows)
