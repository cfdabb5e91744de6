"""Errors raised on bad user input. Each names the file, line or config key."""


class SwiftStudyError(Exception):
    """Base class for all user-facing errors of swift-study."""


class ConfigError(SwiftStudyError):
    """The configuration is invalid; the message names the offending key."""


class DataError(SwiftStudyError):
    """An input data file is invalid; the message names file and line."""


class ArgumentError(ConfigError, ValueError):
    """An arguments object (``GradientArgs``, ``TrainArgs``, ``ScoreArgs``) got an invalid
    value: a configuration error for the workflow, a ``ValueError`` for library callers."""
