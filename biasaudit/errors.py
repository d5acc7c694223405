"""The BiasAuditError hierarchy: every failure the library reports to a user is one of these.

The CLI turns them into one red line on stderr and exit code 1 (``--debug`` shows the traceback).
"""


class BiasAuditError(Exception):
    """Base class of every error biasaudit raises on purpose. Its message names the Python API's arguments
    (``epochs``, ``model="skipgram"``); where the command line's words differ (``--epochs``, ``--model skipgram``),
    ``cli`` holds the same message in them, and the CLI prints that (``for_cli``)."""

    cli: str | None = None

    def with_cli(self, message: str) -> "BiasAuditError":
        """This error, with its message in the command line's words."""
        self.cli = message
        return self

    def for_cli(self) -> str:
        return self.cli or str(self)

    option: str | None = None

    def usage(self, option: str) -> "BiasAuditError":
        """This error, as a usage error of the command line's ``option`` (``--vocab``): the CLI prints it as
        click prints a bad option, with exit code 2."""
        self.option = option
        return self


class ConfigError(BiasAuditError):
    """An option or config field has an invalid value; the message names the field."""


class CorpusError(BiasAuditError):
    """A corpus cannot be found, read or used (empty, undecodable, missing field, duplicate id)."""


class VocabularyError(BiasAuditError):
    """Words a test needs are missing from the model's vocabulary (``missing``: set field -> words)."""

    def __init__(self, message: str, missing: dict | None = None):
        super().__init__(message)
        self.missing = missing or {}


class ArtifactError(BiasAuditError):
    """A saved model or result folder is missing, truncated, corrupted or was made with another config."""


class BiasAuditWarning(UserWarning):
    """Something the user should know that does not stop the run (a damaged cache entry, dropped words); the CLI
    prints each as one "note:" line."""


class DroppedWordsWarning(BiasAuditWarning):
    """Test words the model lacks were dropped (as WEFE warns): the test ran on the rest; the result lists them
    (``dropped_words``)."""
