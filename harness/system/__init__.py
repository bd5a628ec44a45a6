"""What the process stands on: durable file writes (atomic renames, fsync), locks that hold on cluster file
systems, the crash points that test kill -9 safety, the CPUs a job may use, where sdbench keeps its data
(``SDBENCH_HOME``) and the progress lines a run prints and logs. It may import :mod:`harness.errors` only.
"""
