"""sdbench: a benchmark harness for self-distillation with optimised teachers."""

__version__ = "0.1.0"
