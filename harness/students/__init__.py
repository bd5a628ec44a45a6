"""Students outside sdbench: ``bench export`` finds a run's student by dataset, strategy and seed and copies
its model files out; ``bench predict`` computes an exported student's class probabilities for every sampled
frame of a video or folder of frames. It may import :mod:`harness.report` (to read results) and the rooms
below it.
"""
