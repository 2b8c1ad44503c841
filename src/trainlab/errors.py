"""User-facing errors: raised for bad input and printed as one paragraph, without a traceback."""


class TrainlabError(Exception):
    """A problem the user can fix (a missing dataset, a bad value); the message says what to do."""


class DataError(TrainlabError):
    """The dataset on disk is missing, incomplete or not in the expected format."""


class ConfigError(TrainlabError):
    """A config value is inconsistent with the data, the model or another value."""
