"""sdbench: a benchmark harness for self-distillation with optimised teachers.

The harness is a stack of rooms, each a subpackage that imports only from the rooms below it (a test,
``tests/test_layout.py``, checks the order and that no import cycle exists), from the bottom up:

- ``errors`` (module): the exceptions every room raises.
- ``system``: files, locks, crash points, CPUs, where sdbench keeps things, progress lines.
- ``metrics``: numpy functions of labels and probabilities: the official metrics, diagnostics, calibration.
- ``config`` (module): the typed run configuration. ``hooks``: the plugin hooks, specs and registry.
- ``data``: datasets' frame indexes, video decoding, the frame store and the batch loader.
- ``train``: backbones, the fit loop, checkpoints, teacher histories, model files.
- ``science``: strategies, window rules, teacher selection, statistics, the sweep's design and regret.
- ``runs``: the plan and its job keys, the job bodies, the artifact store, executors, gc.
- ``report``: results, tables, teacher reports, regret tables, merged reports, notebook frames.
- ``students``: exporting a run's students and predicting with them.
- ``experiments``: ``bench run`` and ``bench sweep``, scheduling a plan's jobs on an executor.
- ``kits``: conformance test kits and package scaffolds for plugin authors.
- ``api``: the names plugins import, re-exported; ``cli`` (module): the ``bench`` command.

Module paths of the earlier flat layout stay importable, with a deprecation warning (:mod:`harness._moved`).
"""

from harness import _moved

__version__ = "0.1.0"

_moved.install()
