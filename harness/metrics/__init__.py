"""Pure numpy functions of labels and probabilities: the official metrics of the datasets (triplet AP with
ivtmetrics' protocol, phase scores, ranking mAP; see ``docs/protocols.md``), the teacher diagnostics (fit
confidence, NLL, ECE), temperature calibration and the detection of degenerate predictions. It imports no
other room: datasets, strategies and reports all build on it.
"""
