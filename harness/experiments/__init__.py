"""The experiments a user starts: ``bench run`` (the whole cross-product, stage by stage, then results and
tables) and ``bench sweep`` (the oracle sweep of one teacher), each a thin orchestration that schedules the
plan's jobs on the configured executor and writes what :mod:`harness.report` renders. It may import every
room below it.
"""
