"""Errors that reach the user as one clear message instead of a traceback."""


class SdbenchError(Exception):
    """An error caused by input or configuration; the CLI prints its message and exits with status 2."""


class PluginError(SdbenchError):
    """A plugin could not be loaded, clashes with another one, or was asked for by an unknown name."""


class DataError(SdbenchError):
    """A dataset file is missing or malformed; the message names the file, the place and what was expected."""


class ConfigError(SdbenchError):
    """A configuration file or command-line option is invalid."""


class DivergedError(SdbenchError):
    """Training produced a non-finite loss or non-finite probabilities: the job stops, and nothing it computed
    in that epoch is written as a result."""
