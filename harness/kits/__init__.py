"""For plugin authors: conformance test kits (pytest base classes and plain check functions, run on
synthetic data, for strategies, window rules and datasets) and the scaffolds of ``bench new-strategy`` and
``bench new-dataset``. It may import the rooms it checks (``data``, ``train``, ``science``, ``hooks``) and
those below them; nothing in the harness imports it.
"""
