"""Errors that robustart raises on bad input.

Every error names the problem and says what to do about it. The command line catches
:class:`RobustartError` and prints its message without a traceback (exit status 2).
"""

from __future__ import annotations


class RobustartError(Exception):
    """Base class of all errors caused by user input (configs, paths, data, checkpoints)."""


class UnknownNameError(RobustartError, KeyError):
    """A name (model, attack, corruption, ...) that no registry knows."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(RobustartError, ValueError):
    """A configuration value that is out of range or inconsistent."""


class DatasetNotFoundError(RobustartError, FileNotFoundError):
    """A dataset that is missing or incomplete on disk."""


class CheckpointError(RobustartError, RuntimeError):
    """A checkpoint that is missing, corrupt, tampered with or made for another model."""


class InputRangeError(RobustartError, ValueError):
    """Images that are not float tensors in [0, 1] with NCHW layout."""


class NonFiniteError(RobustartError, FloatingPointError):
    """A model whose loss, gradients, weights or logits are NaN or infinite: robustart refuses to
    train on or report numbers for it."""


class DivergenceError(NonFiniteError):
    """Training diverged: the loss or the gradient norm became NaN or infinite."""


class CorruptImageError(RobustartError, OSError):
    """An image file that cannot be decoded: truncated, corrupt, or not an image at all.

    Raised when the image is read (inside a ``DataLoader``, possibly in a worker process), so
    it is constructible from a single message string: torch re-raises worker exceptions as
    ``type(exc)(message_with_worker_traceback)``.
    """


class OutputError(RobustartError, OSError):
    """A result could not be written (the output folder removed, replaced by a file, full or
    not writable while the command ran)."""


class EmptyInputError(ConfigError):
    """Nothing to score: zero images, an empty subset or empty predictions. An accuracy (or
    any other mean) over nothing is refused rather than reported as 0 or NaN."""


class RobustartWarning(UserWarning):
    """A warning addressed to the user (a setting that weakens an attack, files left out of a
    dataset); the command line prints it as one ``robustart: warning: ...`` line."""
