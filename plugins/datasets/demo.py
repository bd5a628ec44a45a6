"""The built-in demo datasets: small synthetic data in the real formats, generated on first use.

Both are generated deterministically (fixed seeds) into ``$SDBENCH_HOME/demo/<name>`` (or
``options["root"]``) and read back by the same readers as the real datasets, so the demo exercises the
real code paths. Generation writes into a temporary directory, writes a completion marker holding the
fingerprint last, and renames the directory into place; a directory without the current marker is
regenerated.

``demo-triplets`` (CholecT45 layout, multi-label, 12 videos of 80-100 frames at 1 fps, 64x64 PNGs)
    Twelve real triplet IDs, from common (grasper,retract,gallbladder) to rare (grasper,null,null). Each
    visible triplet is drawn in its own quadrant: the **target** as a tinted patch, the **instrument** as a
    coloured shape (bar, disc, hook, cross, triangle, ring), the **verb** as a stripe or dot texture on the
    shape. Frames hold 0-3 triplets that persist over segments of 2-6 frames; every video has its own
    lighting and colour cast, every frame pixel noise. Ambiguity and label noise, in train, val and test
    labels alike (it is noise of the dataset, like annotator disagreement):

    - about 35% of frames have one label flipped: a visible triplet left out, or an invisible one added
      (drawn from its own random stream, so the pixels do not depend on it);
    - grasper,grasp,gallbladder and grasper,retract,gallbladder share instrument and target and differ
      only by a faint texture (vertical vs horizontal stripes at low contrast);
    - about 10% of drawn instruments are faint, and about 8% of triplets are partly hidden by smoke.

    Measured with timm ``test_resnet`` at 48x48 (Adam 2e-3, batch 32): as scores, the hard training labels
    rank the noise-free ones at mAP 0.81; the teacher's predictions on its own training frames reach 0.99
    around epochs 16-20 and then decline as it starts fitting the flips. Training on the noise-free labels
    instead of the noisy ones is worth about 0.035 test mAP (against noise-free test labels). Students
    distilled from single epochs (2 seeds, 30 epochs) landed within seed noise of each other and of the
    hard-label student; at a 15% flip rate the noise cost nothing, hence the high rate.

``demo-phases`` (Cholec80 layout, multi-class, 12 videos of 60-100 s, H.264 64x64 at 25 fps)
    The seven phases in canonical order; some videos skip Preparation, GallbladderPackaging or
    CleaningCoagulation, some go back to a phase once. Each phase has its own colour, stripe texture and a
    moving disc with its own trajectory. Ambiguity: looks cross-fade over 2-4 s at each transition, the
    annotated boundaries are shifted by up to 2 s from the visual ones, and about 4% of seconds show
    another phase's look (distractors) under an unchanged label.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import shutil
import tempfile
from abc import abstractmethod
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from harness.data.dataset import Dataset, FrameIndex, Split
from harness.errors import ConfigError
from harness.paths import sdbench_home
from harness.plugins import hookimpl
from harness.specs import DatasetSpec
from plugins.datasets.cholec80 import ANNOTATION_FPS, PHASES, read_cholec80, write_phase_annotation
from plugins.datasets.cholect45 import (NUM_TRIPLETS, read_cholect45, read_class_names, triplet_maps,
                                        write_cholect45_labels)

GENERATOR_VERSION = 1
"""Bump whenever generated pixels or labels change: it is part of the fingerprint."""

MARKER = "COMPLETE"
DEFAULT_VIDEOS = 12
MIN_VIDEOS = 5
_SIZE = 64


@hookimpl
def sdbench_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec("demo-triplets", "synthetic action triplets in the CholecT45 layout (generated, ~1k frames)",
                    DemoTriplets),
        DatasetSpec("demo-phases", "synthetic surgical phases in the Cholec80 layout (generated 25-fps videos)",
                    DemoPhases),
    ]


class _Demo(Dataset):
    """Options: ``root`` (where to generate; default ``$SDBENCH_HOME/demo/<name>``) and ``num_videos``."""

    video_prefix: str

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = dict(options or {})
        self.root = Path(options.pop("root", None) or sdbench_home() / "demo" / self.name)
        self.num_videos = options.pop("num_videos", DEFAULT_VIDEOS)
        if options:
            raise ConfigError(f"dataset {self.name}: unknown options {sorted(options)}; known: root, num_videos")
        if not isinstance(self.num_videos, int) or self.num_videos < MIN_VIDEOS:
            raise ConfigError(f"dataset {self.name}: num_videos must be at least {MIN_VIDEOS}, got {self.num_videos}")

    def fingerprint(self) -> str:
        key = {"dataset": self.name, "generator": GENERATOR_VERSION, "num_videos": self.num_videos}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def videos(self) -> list[str]:
        return [f"{self.video_prefix}{number:02d}" for number in range(1, self.num_videos + 1)]

    def splits(self) -> list[Split]:
        """One split by video: the last third for test, the sixth before it for validation."""
        videos = self.videos()
        test = max(3, len(videos) // 3)
        val = max(1, len(videos) // 6)
        return [Split("default", train=tuple(videos[:-test - val]), val=tuple(videos[-test - val:-test]),
                      test=tuple(videos[-test:]))]

    @classmethod
    def synthesize(cls, directory: Path) -> None:
        """The demo data itself is the look-alike: generate it into ``directory``."""
        cls({"root": directory}).prepare()

    def prepare(self) -> None:
        if self._complete():
            return
        self.root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.root.parent, prefix=f".{self.root.name}.", suffix=".tmp"))
        try:
            self._generate(staging)
            (staging / MARKER).write_text(self.fingerprint())
            if self._complete():  # another process finished first
                return
            shutil.rmtree(self.root, ignore_errors=True)
            os.rename(staging, self.root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _complete(self) -> bool:
        marker = self.root / MARKER
        return marker.exists() and marker.read_text() == self.fingerprint()

    @abstractmethod
    def _generate(self, root: Path) -> None:
        """Write the whole dataset under ``root``."""


class DemoTriplets(_Demo):
    name = "demo-triplets"
    task = "multilabel"
    primary_metric = "mAP"
    video_prefix = "VID"

    def index(self) -> FrameIndex:
        self.prepare()
        return FrameIndex(self.name, self.task, read_class_names(self.root), read_cholect45(self.root, self.videos()))

    def evaluate(self, labels: np.ndarray, probs: np.ndarray, video_ids: np.ndarray) -> dict[str, float]:
        """Video-wise mAP over the triplet classes present in the labels."""
        from harness.metrics.ranking import video_wise_map

        return {"mAP": float(video_wise_map(labels, probs, video_ids))}

    def _generate(self, root: Path) -> None:
        from PIL import Image

        for number, video in enumerate(self.videos(), 1):
            frames, labels = _triplet_video(np.random.default_rng([GENERATOR_VERSION, 45, number]),
                                            np.random.default_rng([GENERATOR_VERSION, 45, number, 1]))
            folder = root / "data" / video
            folder.mkdir(parents=True)
            for frame_id, pixels in enumerate(frames):
                Image.fromarray(pixels).save(folder / f"{frame_id:06d}.png")
            write_cholect45_labels(root, video, range(len(labels)), labels)


class DemoPhases(_Demo):
    name = "demo-phases"
    task = "multiclass"
    primary_metric = "accuracy"
    video_prefix = "video"

    def index(self) -> FrameIndex:
        self.prepare()
        return FrameIndex(self.name, self.task, PHASES, read_cholec80(self.root, self.videos()))

    def evaluate(self, labels: np.ndarray, probs: np.ndarray, video_ids: np.ndarray) -> dict[str, float]:
        """Video-wise accuracy, precision, recall, Jaccard and F1 of the most probable phase."""
        from harness.metrics.phase import phase_scores

        scores = phase_scores(labels, np.asarray(probs).argmax(axis=1), video_ids, len(PHASES))
        return {metric: float(value) for metric, value in scores.items()}

    def _generate(self, root: Path) -> None:
        for number, video in enumerate(self.videos(), 1):
            rng = np.random.default_rng([GENERATOR_VERSION, 80, number])
            visual, annotated = _phase_timeline(rng)
            _encode_video(root / "videos" / f"{video}.mp4", _phase_chunks(rng, visual))
            write_phase_annotation(root / "phase_annotations" / f"{video}-phase.txt", annotated)


# --- demo-triplets: what each triplet looks like -------------------------------------------------------

# (triplet ID, relative frequency, verb texture contrast); the first two differ only by a faint verb cue.
_TRIPLETS = (
    (7, 0.08, 0.15),    # grasper,grasp,gallbladder
    (17, 0.20, 0.15),   # grasper,retract,gallbladder
    (19, 0.08, 0.5),    # grasper,retract,liver
    (60, 0.18, 0.5),    # hook,dissect,gallbladder
    (58, 0.07, 0.5),    # hook,dissect,cystic_duct
    (51, 0.05, 0.5),    # hook,coagulate,gallbladder
    (29, 0.06, 0.5),    # bipolar,coagulate,liver
    (79, 0.07, 0.5),    # clipper,clip,cystic_duct
    (78, 0.04, 0.5),    # clipper,clip,cystic_artery
    (69, 0.05, 0.5),    # scissors,cut,cystic_duct
    (82, 0.05, 0.5),    # irrigator,aspirate,fluid
    (94, 0.03, 0.0),    # grasper,null_verb,null_target
)
_INSTRUMENT_COLOURS = ((70, 200, 70), (60, 90, 230), (235, 215, 40), (215, 60, 215), (40, 215, 215), (235, 235, 235))
_TARGET_COLOURS = {0: (110, 150, 40), 2: (235, 205, 160), 3: (210, 20, 30), 6: (40, 70, 150), 8: (80, 20, 25)}
_QUADRANT_CENTRES = ((16, 16), (16, 48), (48, 16), (48, 48))
_FLIP_RATE, _FAINT_RATE, _SMOKE_RATE = 0.35, 0.10, 0.08

_Y, _X = np.mgrid[0:_SIZE, 0:_SIZE].astype(np.float32)


def _instrument_mask(instrument: int, cy: float, cx: float) -> np.ndarray:
    """Bar, disc, hook, cross, triangle or ring of half-size 10 centred at (cy, cx)."""
    u, v = (_X - cx) / 10, (_Y - cy) / 10
    inside = (abs(u) <= 1) & (abs(v) <= 1)
    radius = np.hypot(u, v)
    shapes = (
        inside & (abs(v) < 0.35),                                         # grasper: bar
        radius < 1,                                                       # bipolar: disc
        inside & ((abs(u + 0.6) < 0.3) | ((v > 0.5) & (u > -0.9))),        # hook: L
        inside & ((abs(u - v) < 0.35) | (abs(u + v) < 0.35)),              # scissors: cross
        inside & (v > -1) & (abs(u) < (v + 1) / 2),                       # clipper: triangle
        (radius > 0.55) & (radius < 1),                                   # irrigator: ring
    )
    return shapes[instrument]


@functools.cache
def _verb_texture(verb: int) -> np.ndarray:
    """A 0/1 texture per verb: stripes of several orientations, checks or dots."""
    x, y = _X.astype(np.int64), _Y.astype(np.int64)
    textures = {0: x // 3 % 2, 1: y // 3 % 2, 2: (x + y) // 3 % 2, 3: (x // 3 + y // 3) % 2,
                4: (x - y) // 3 % 2, 5: (x % 4 < 2) & (y % 4 < 2), 6: (x // 6 + y // 6) % 2}
    return textures.get(verb, np.zeros_like(x)).astype(np.float32)


def _triplet_video(rng: np.random.Generator, flip_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``(N, 64, 64, 3)`` uint8 and noisy labels ``(N, 100)`` uint8 of one video.

    Label flips come from their own random stream, so the pixels do not depend on them.
    """
    maps = triplet_maps()
    ids = np.array([t[0] for t in _TRIPLETS])
    weights = np.array([t[1] for t in _TRIPLETS])
    num_frames = int(rng.integers(80, 101))
    base = rng.uniform((150, 70, 70), (190, 110, 100)).astype(np.float32)
    gain = rng.normal(1, 0.08, 3).astype(np.float32)
    offset = np.float32(rng.normal(0, 10))
    frames = np.empty((num_frames, _SIZE, _SIZE, 3), dtype=np.uint8)
    labels = np.zeros((num_frames, NUM_TRIPLETS), dtype=np.uint8)
    start = 0
    while start < num_frames:
        length = min(int(rng.integers(2, 7)), num_frames - start)
        count = int(rng.choice(4, p=(0.08, 0.45, 0.35, 0.12)))
        chosen = rng.choice(len(ids), size=count, replace=False, p=weights / weights.sum())
        slots = rng.permutation(4)[:count]
        centres = np.array(_QUADRANT_CENTRES, dtype=np.float32)[slots] + rng.uniform(-4, 4, (count, 2))
        for t in range(start, start + length):
            image = _background(base, t)
            for k, c in zip(chosen, centres):
                _draw_triplet(rng, image, maps[ids[k]], _TRIPLETS[k][2], c + rng.uniform(-2, 2, 2))
            image = image * gain + offset + rng.normal(0, 8, image.shape)
            frames[t] = np.clip(image, 0, 255).astype(np.uint8)
            labels[t, ids[chosen]] = 1
            if flip_rng.random() < _FLIP_RATE:
                _flip_one_label(flip_rng, labels[t], ids, weights, chosen)
        start += length
    return frames, labels


def _background(base: np.ndarray, t: int) -> np.ndarray:
    """Tissue-coloured background with slow shading that drifts with time (camera motion)."""
    shade = 0.9 + 0.1 * np.sin(_X / 9 + t * 0.07) * np.cos(_Y / 11 - t * 0.05)
    return shade[..., None] * base


def _draw_triplet(rng: np.random.Generator, image: np.ndarray, components: np.ndarray, verb_contrast: float,
                  centre: np.ndarray) -> None:
    """Draw target patch, instrument shape and verb texture of one triplet into ``image`` (float RGB)."""
    _, instrument, verb, target = components[:4]
    cy, cx = centre
    if target in _TARGET_COLOURS:
        patch = ((_X - cx) / 15) ** 2 + ((_Y - cy) / 14) ** 2 < 1
        image[patch] = 0.25 * image[patch] + 0.75 * np.array(_TARGET_COLOURS[target], dtype=np.float32)
    mask = _instrument_mask(instrument, cy, cx)
    colour = np.array(_INSTRUMENT_COLOURS[instrument], dtype=np.float32)
    textured = colour * (1 - verb_contrast * _verb_texture(verb))[..., None]
    alpha = rng.uniform(0.3, 0.5) if rng.random() < _FAINT_RATE else 1.0
    image[mask] = (1 - alpha) * image[mask] + alpha * textured[mask]
    if rng.random() < _SMOKE_RATE:
        sy, sx = centre + rng.uniform(-5, 5, 2)
        smoke = np.hypot(_X - sx, _Y - sy) < rng.uniform(6, 9)
        image[smoke] = 0.3 * image[smoke] + 0.7 * 200


def _flip_one_label(rng: np.random.Generator, row: np.ndarray, ids: np.ndarray, weights: np.ndarray,
                    visible: np.ndarray) -> None:
    """Leave out one visible triplet, or add one that is not visible (as often as the triplet occurs, so that
    rare triplets stay rare)."""
    hidden = np.setdiff1d(np.arange(len(ids)), visible)
    if len(visible) and rng.random() < 0.5:
        row[ids[rng.choice(visible)]] = 0
    else:
        row[ids[rng.choice(hidden, p=weights[hidden] / weights[hidden].sum())]] = 1


# --- demo-phases: timelines and pixels -----------------------------------------------------------------

_PHASE_SHARE = np.array((0.06, 0.28, 0.12, 0.26, 0.09, 0.09, 0.10))
_PHASE_COLOURS = np.array(((150, 90, 90), (200, 120, 60), (90, 140, 190), (120, 170, 60), (190, 190, 200),
                           (170, 50, 60), (110, 80, 150)), dtype=np.float32)
_DISC_COLOURS = np.array(((240, 240, 240), (40, 40, 40), (240, 220, 40), (40, 220, 230), (230, 60, 230),
                          (60, 230, 60), (30, 60, 220)), dtype=np.float32)
_DISC_PATHS = np.array(((20, 0, 4.3), (12, 12, 3.3), (0, 20, 5.3), (18, 8, 6.7), (12, 12, 2.3), (6, 6, 3.7),
                        (22, 22, 7.9)), dtype=np.float32)
"""Per phase: horizontal and vertical amplitude (px) and period (s) of the disc's path; periods are not whole
seconds, so that frames sampled at 1 fps see the disc in ever new places."""
_DISTRACTOR_RATE = 0.04
_CHUNK = 250


def _phase_timeline(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per 25-fps frame: the phase mixture shown ``(T, 7)`` and the annotated phase ``(T,)``."""
    seconds = int(rng.integers(60, 101))
    phases = [p for p in range(len(PHASES)) if p not in (0, 4, 5) or rng.random() > 0.15]
    if rng.random() < 0.3:  # go back to a phase after the one that follows it
        at = int(rng.integers(1, len(phases) - 1))
        phases.insert(at + 1, phases[at - 1])
    shares = _PHASE_SHARE[phases] * rng.gamma(4, 0.25, len(phases))
    lengths = np.maximum(5 * ANNOTATION_FPS, np.rint(shares / shares.sum() * seconds * ANNOTATION_FPS)).astype(int)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    total = int(bounds[-1])
    mixture = np.eye(len(PHASES), dtype=np.float32)[np.repeat(phases, lengths)]
    annotated = np.repeat(phases, lengths)
    for i, bound in enumerate(bounds[1:-1], 1):
        half = int(rng.integers(ANNOTATION_FPS, 2 * ANNOTATION_FPS))
        ramp = np.linspace(0, 1, 2 * half, dtype=np.float32)[:, None]
        mixture[bound - half:bound + half] = ((1 - ramp) * np.eye(len(PHASES))[phases[i - 1]]
                                              + ramp * np.eye(len(PHASES))[phases[i]])
        shifted = bound + int(rng.integers(-2 * ANNOTATION_FPS, 2 * ANNOTATION_FPS + 1))
        annotated[min(bound, shifted):max(bound, shifted)] = phases[i] if shifted < bound else phases[i - 1]
    for second in np.flatnonzero(rng.random(total // ANNOTATION_FPS) < _DISTRACTOR_RATE):
        other = int(rng.integers(len(PHASES)))
        mixture[second * ANNOTATION_FPS:(second + 1) * ANNOTATION_FPS] = np.eye(len(PHASES))[other]
    return mixture, annotated


def _phase_chunks(rng: np.random.Generator, mixture: np.ndarray) -> Iterator[np.ndarray]:
    """The uint8 RGB frames of one video in chunks ``(T, 64, 64, 3)``: mixed phase looks, a moving disc, noise."""
    looks = _phase_looks(rng)
    gain = rng.normal(1, 0.1, 3).astype(np.float32)
    noise = rng.normal(0, 5, (32, _SIZE, _SIZE, 3)).astype(np.float32)
    phase_offsets = rng.uniform(0, 2 * math.pi, len(PHASES))
    for start in range(0, len(mixture), _CHUNK):
        weights = mixture[start:start + _CHUNK]
        frames = np.zeros((len(weights), *looks.shape[1:]), dtype=np.float32)
        for phase in np.flatnonzero(weights.any(axis=0)):  # elementwise, not a reduction: same bits every run
            frames += weights[:, phase, None, None, None] * looks[phase]
        dominant = weights.argmax(axis=1)
        time = np.arange(start, start + len(weights), dtype=np.float32) / ANNOTATION_FPS
        ax, ay, period = _DISC_PATHS[dominant].T
        angle = 2 * math.pi * time / period + phase_offsets[dominant]
        cx, cy = (32 + ax * np.sin(angle)).astype(np.float32), (32 + ay * np.cos(angle)).astype(np.float32)
        disc = (_X - cx[:, None, None]) ** 2 + (_Y - cy[:, None, None]) ** 2 < 25
        frames = np.where(disc[..., None], _DISC_COLOURS[dominant][:, None, None], frames)
        frames = frames * gain + noise[rng.integers(len(noise), size=len(weights))]
        yield np.clip(frames, 0, 255).astype(np.uint8)


def _phase_looks(rng: np.random.Generator) -> np.ndarray:
    """``(7, 64, 64, 3)`` float images: each phase's colour with its own stripe texture."""
    looks = []
    for phase, colour in enumerate(_PHASE_COLOURS):
        angle = phase * math.pi / len(PHASES) + rng.normal(0, 0.1)
        period = 6 + 2 * (phase % 3)
        stripes = 0.5 + 0.5 * np.sin(2 * math.pi * (_X * math.cos(angle) + _Y * math.sin(angle)) / period)
        looks.append((1 - 0.3 * stripes)[..., None] * colour)
    return np.stack(looks).astype(np.float32)


def _encode_video(path: Path, chunks: Iterable[np.ndarray]) -> None:
    """H.264 at 25 fps, yuv420p, one slice per frame like real recordings; fast preset.

    Macroblock-tree rate control is off and the encoder runs on one thread: with x264's macroblock tree on,
    the bytes of some videos changed from run to run.
    """
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=ANNOTATION_FPS,
                                      options={"preset": "veryfast", "crf": "26", "x264-params": "mbtree=0"})
        stream.codec_context.thread_count = 1
        stream.width = stream.height = _SIZE
        stream.pix_fmt = "yuv420p"
        for chunk in chunks:
            for pixels in chunk:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
