"""Training one network: backbones resolved through backbone plugins, the fit loop (precision, determinism,
checkpoints that resume at the last finished epoch), prediction, the teacher history written per epoch with
its diagnostics, and a student's model files. It may import the rooms below it (``data``, ``hooks``,
``config``, ``metrics``, ``system``); what it computes per epoch comes from :mod:`harness.metrics`.
"""
