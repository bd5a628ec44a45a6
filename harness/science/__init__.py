"""The science of choosing a teacher: the strategy API (selections of checkpoints and their soft labels),
window rules, best-validation selection, the paired statistics of the comparison tables, and the oracle
sweep's design and regret. Pure numpy and pandas on teacher histories: it may import :mod:`harness.train`
(for histories) and the rooms below it, never runs, reports or torch.
"""
