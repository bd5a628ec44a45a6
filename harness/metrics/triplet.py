"""Action-triplet recognition metrics: component disentangling and the video-wise AP of ivtmetrics.

A triplet ``<instrument, verb, target>`` prediction also scores its components. ``maps`` is the
(100, 6) integer table ``IVT, I, V, T, IV, IT`` (ivtmetrics' ``maps.txt``; the dataset plugin reads
it), so this module stays dataset-agnostic. A component class's label and score in a frame are the
**max** over the triplets that map to it. Component classes are the distinct ids of the table's
column in increasing order, which gives widths i 6, v 10, t 15, iv 26, it 59, ivt 100 (iv and it
ids are not contiguous: ``IV = 10*I + V``, ``IT = 15*I + T``).

The AP is :func:`harness.metrics.ranking.video_wise_ap`, so classes absent from a video are left out
of that video whatever scikit-learn is installed (docs/protocols.md section 3).
"""

from __future__ import annotations

import numpy as np

from harness.metrics.ranking import video_wise_ap

__all__ = ["COMPONENTS", "NULL_TRIPLETS", "component_scores", "triplet_video_ap"]

COMPONENTS = ("ivt", "i", "v", "t", "iv", "it")  # the order of the columns of ``maps``
NULL_TRIPLETS = np.arange(94, 100)  # <instrument k, null_verb, null_target>


def component_scores(
    labels: np.ndarray, scores: np.ndarray, maps: np.ndarray, component: str
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores of ``component`` from triplet ``labels`` and ``scores`` (N, 100).

    Returns two (N, width) arrays; column j is the j-th smallest id of ``component`` in ``maps``.
    """
    triplets, starts, _ = _component_groups(maps, component)
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    for name, values in (("labels", y), ("scores", s)):
        if values.ndim != 2 or values.shape[1] != len(maps):
            raise ValueError(f"{name} must be a (frames, {len(maps)}) array; found shape {values.shape}")
    if len(starts) == len(triplets) and np.array_equal(triplets, np.arange(len(triplets))):
        return y, s  # one triplet per class, in order (ivt): nothing to reduce, no copy
    ends = np.append(starts[1:], len(triplets))
    groups = [triplets[start:end] for start, end in zip(starts, ends)]
    # One max per component class over its columns: faster than np.maximum.reduceat along rows.
    return (
        np.stack([y[:, group].max(axis=1) for group in groups], axis=1),
        np.stack([s[:, group].max(axis=1) for group in groups], axis=1),
    )


def triplet_video_ap(
    labels: np.ndarray,
    scores: np.ndarray,
    video_ids: np.ndarray,
    maps: np.ndarray,
    component: str = "ivt",
    ignore_null: bool = False,
) -> dict[str, np.ndarray | float]:
    """Video-wise AP of one triplet component, as ivtmetrics' ``Recognition.compute_video_AP``.

    Per video, AP per component class (NaN where the class has no positive in that video); mean
    over videos ignoring NaN; mAP is the mean over classes ignoring NaN.

    ``ignore_null=True`` (challenge protocol) leaves out the null triplets 94-99 ``<instrument k,
    null_verb, null_target>``: every component class fed **only** by null triplets is dropped, i.e.
    ivt 94-99, v 9 (null_verb), t 14 (null_target), iv 9 19 29 39 49 59, it 14 29 44 59 74 89.
    Nothing is dropped for i: every instrument also has real triplets, and a null triplet still
    shows that its instrument is in view. For ivt this is what ivtmetrics does (it cuts the last six
    classes); ivtmetrics ignores the flag for the other components and keeps the null classes.

    Returns ``{"AP": (K,) per-class AP, "mAP": float, "classes": (K,) component ids of "AP"}``;
    without ``ignore_null`` K is the component's full width.
    """
    _, _, class_ids = _component_groups(maps, component)
    y, s = component_scores(labels, scores, maps, component)
    ap = video_wise_ap(y, s, video_ids)
    if ignore_null:
        kept = ~np.isin(class_ids, _null_only_classes(maps, component))
        ap, class_ids = ap[kept], class_ids[kept]
    present = ~np.isnan(ap)
    mean = float(ap[present].mean()) if present.any() else float("nan")
    return {"AP": ap, "mAP": mean, "classes": class_ids}


def _component_groups(maps: np.ndarray, component: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triplet columns sorted by component id, the start of each id's run, and the sorted ids."""
    if component not in COMPONENTS:
        raise ValueError(f"component must be one of {', '.join(COMPONENTS)}; found {component!r}")
    table = np.asarray(maps)
    if table.ndim != 2 or table.shape[1] < len(COMPONENTS):
        raise ValueError(f"maps must be a (triplets, 6) table IVT,I,V,T,IV,IT; found shape {table.shape}")
    ids = table[:, COMPONENTS.index(component)]
    order = np.argsort(ids, kind="stable")
    class_ids, starts = np.unique(ids[order], return_index=True)
    return table[order, 0], starts, class_ids


def _null_only_classes(maps: np.ndarray, component: str) -> np.ndarray:
    """Ids of ``component`` reached by null triplets and by no other triplet."""
    table = np.asarray(maps)
    ids = table[:, COMPONENTS.index(component)]
    is_null = np.isin(table[:, 0], NULL_TRIPLETS)
    return np.setdiff1d(ids[is_null], ids[~is_null])
