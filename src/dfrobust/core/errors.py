"""One exception type for problems with a user's input, so the workflow can
print a single clear line (file + problem) instead of a traceback."""


class InputError(Exception):
    """Bad input: a missing dataset, a corrupt video, a config key of the wrong type."""


class ConfigError(InputError):
    """A problem with a setting, not with one input: the same for every video,
    so a job stops instead of excluding its videos one by one."""
