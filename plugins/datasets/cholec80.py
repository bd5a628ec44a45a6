"""Reader and writer of the Cholec80 layout (surgical phases).

::

    videos/video01.mp4                   25 fps recordings
    phase_annotations/video01-phase.txt  header "Frame<TAB>Phase", then one line per 25-fps frame

Phases are written as names and mapped by name to the canonical order of :data:`PHASES` (some loaders use
another order). Frames are sampled from the video by timestamp: frame k at ``sample_fps`` is the 25-fps
frame ``round(k * 25 / sample_fps)`` and takes that frame's annotation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from harness.data.dataset import VideoFileFrames, VideoFrames
from harness.errors import DataError

PHASES = ("Preparation", "CalotTriangleDissection", "ClippingCutting", "GallbladderDissection",
          "GallbladderPackaging", "CleaningCoagulation", "GallbladderRetraction")
ANNOTATION_FPS = 25
_HEADER = ("Frame", "Phase")


def read_cholec80(root: Path, videos: Sequence[str] | None = None, sample_fps: float = 1.0) -> dict[str, VideoFrames]:
    """Phase labels ``(N,)`` int64 at ``sample_fps`` of ``videos`` (default: every annotated video)."""
    root = Path(root)
    if videos is None:
        videos = sorted(path.name.removesuffix("-phase.txt")
                        for path in (root / "phase_annotations").glob("*-phase.txt"))
        if not videos:
            raise DataError(f"no phase annotations (videoXX-phase.txt) in {root / 'phase_annotations'}")
    return {video: _read_video(root, video, sample_fps) for video in videos}


def read_phase_annotation(path: Path) -> np.ndarray:
    """The phase index of every 25-fps frame of one annotation file."""
    if not path.exists():
        raise DataError(f"phase annotation {path} is missing")
    lines = path.read_text().splitlines()
    if not lines or tuple(lines[0].split()) != _HEADER:
        raise DataError(f"{path}, line 1: expected the header 'Frame<TAB>Phase', found {lines[0] if lines else ''!r}")
    index = {name: i for i, name in enumerate(PHASES)}
    phases: list[int] = []
    for number, text in enumerate(lines[1:], 2):
        if not text.strip():
            continue
        fields = text.split()
        if len(fields) != 2 or not fields[0].isdigit():
            raise DataError(f"{path}, line {number}: expected '<frame><TAB><phase name>', found {text!r}")
        if int(fields[0]) != len(phases):
            raise DataError(f"{path}, line {number}: expected frame {len(phases)}, found {fields[0]}")
        if fields[1] not in index:
            raise DataError(f"{path}, line {number}: unknown phase {fields[1]!r}; known phases: {', '.join(PHASES)}")
        phases.append(index[fields[1]])
    return np.array(phases, dtype=np.int64)


def write_phase_annotation(path: Path, phases_per_25fps_frame: Sequence[int]) -> None:
    """Write one annotation file: the header, then ``frame<TAB>phase name`` per 25-fps frame."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{frame}\t{PHASES[phase]}\n" for frame, phase in enumerate(phases_per_25fps_frame))
    path.write_text("\t".join(_HEADER) + "\n" + rows)


def _read_video(root: Path, video: str, sample_fps: float) -> VideoFrames:
    phases = read_phase_annotation(root / "phase_annotations" / f"{video}-phase.txt")
    video_file = root / "videos" / f"{video}.mp4"
    if not video_file.exists():
        raise DataError(f"video file {video_file} is missing (its phase annotation exists)")
    step = ANNOTATION_FPS / sample_fps
    source_frames = np.rint(np.arange(int(len(phases) / step) + 2) * step).astype(np.int64)
    source_frames = source_frames[source_frames < len(phases)]
    frame_ids = np.arange(len(source_frames), dtype=np.int64)
    return VideoFrames(video, frame_ids, phases[source_frames], VideoFileFrames(str(video_file), sample_fps))
