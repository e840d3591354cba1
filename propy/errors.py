"""User-facing errors: the CLI prints their message without a traceback."""


class PropyError(Exception):
    """Base class for errors caused by the user's input, not by a bug."""


class ConfigError(PropyError):
    """params.yaml (or a variant override) is missing a key, has an unknown key or a bad value."""


class DataError(PropyError):
    """An annotation, video or cache file is missing or malformed."""
