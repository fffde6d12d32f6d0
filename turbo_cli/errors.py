"""Domain errors. Raised anywhere in turbo; turned into a one-line message and exit code only in cli/."""


class TurboError(Exception):
    """A problem the user can fix; the message is one line naming the file/option and the problem."""

    exit_code = 1


class InputError(TurboError):
    """Bad input file, folder or option value."""

    exit_code = 2


class ConfigError(TurboError):
    """Bad recipe / config value (unknown key, wrong type)."""

    exit_code = 2


class ModelError(TurboError):
    """A model or checkpoint that cannot be found, loaded or does not fit the base model."""

    exit_code = 3


class OfflineError(ModelError):
    """Weights are needed from the network but we are offline."""

    exit_code = 4
