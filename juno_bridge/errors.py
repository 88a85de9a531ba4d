"""The one exception hierarchy of juno-bridge; each class matches a ``jb_status`` of the C ABI."""
from __future__ import annotations


class Error(Exception):
    """Base of every error juno-bridge raises.

    ``code`` is the C ABI's status (``jb_status``), ``backend_code`` the backend's own code (ONNX
    Runtime's ``OrtErrorCode``), 0 when there is none.
    """

    code = 6

    def __init__(self, message: str, backend_code: int = 0):
        super().__init__(message)
        self.backend_code = backend_code


class InvalidArgumentError(Error, ValueError):
    """Misuse of the API: an unknown option, a bad index, a closed session."""

    code = 1


class InputError(Error, ValueError):
    """A tensor does not fit the model: name, rank, shape, contiguity, alignment, overlap."""

    code = 2


class InputTypeError(InputError, TypeError):
    """A tensor has the wrong element type, or is not an array at all."""

    code = 3


class ModelLoadError(Error):
    """A model file is missing, unreadable or corrupt."""

    code = 4


class BackendUnavailableError(Error):
    """A runtime library or plugin is missing or too old, or an execution provider is absent."""

    code = 5


class RunError(Error):
    """The backend failed while running the model."""

    code = 6


class UnsupportedError(Error, NotImplementedError):
    """A valid model feature the bridge cannot pass (string tensors, sequences, maps)."""

    code = 7


_BY_CODE = {cls.code: cls for cls in (InvalidArgumentError, InputError, InputTypeError, ModelLoadError,
                                      BackendUnavailableError, RunError, UnsupportedError)}


def error_class(code: int) -> type[Error]:
    """The exception class for a ``jb_status`` value."""
    return _BY_CODE.get(code, Error)
