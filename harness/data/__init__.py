"""The data side of a run: the dataset base classes plugins implement (frame index, splits, evaluation), data
roots and content fingerprints, video decoding with PyAV, the memory-mapped frame store, the batch loader
and the batched on-device augmentation. It may import :mod:`harness.system`, :mod:`harness.metrics`,
:mod:`harness.config` and :mod:`harness.hooks`, never training or runs.
"""
