"""Running the cross-product: the plan (cells, content-addressed job keys, the job graph; no torch), the job
context and job bodies (frames, teacher, soft labels, student) that executors call, the artifact store with
its locks and failure records, executors, experiment loggers, the run record and garbage collection. It may
import every room below it (``science``, ``train``, ``data``, ``hooks``, ...), never reports or the CLI.
"""
