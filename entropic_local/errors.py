"""Every exception entropic-local raises on purpose, in one place.

The CLI maps each class to one line on stderr and a distinct exit code (``exit_code``);
``--verbose`` adds the traceback. Library users catch ``EntropicError`` or a subclass.
"""

from __future__ import annotations


class EntropicError(Exception):
    """Base class. ``hint`` says how to fix it; ``exit_code`` is the CLI's exit status."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        msg = super().__str__()
        return f"{msg} ({self.hint})" if self.hint else msg


class UsageError(EntropicError, ValueError):
    """A bad argument: empty prompt, out-of-range option, unknown command value."""

    exit_code = 2


class InvalidSamplerSpec(UsageError):
    """A sampler spec string or parameter that cannot be used; names the bad part."""

    exit_code = 3


class ModelNotFound(EntropicError, FileNotFoundError):
    """No such model file, registry name, or a model that is not on disk and cannot be fetched."""

    exit_code = 4


class InvalidModelFile(EntropicError):
    """The file exists but is not a loadable GGUF (not GGUF, truncated, corrupt, bad hash)."""

    exit_code = 5


class ContextOverflow(EntropicError):
    """The prompt (plus what must be generated) does not fit in the context window."""

    exit_code = 6


class LlamaError(EntropicError):
    """llama.cpp failed: to load a model or create a context, or to decode."""

    exit_code = 7


class ModelLoadError(LlamaError):
    """llama.cpp refused to load a model or create a context for another reason."""


class DecodeError(LlamaError):
    """llama.cpp failed to decode (an error code from ``llama_decode``, or logits that came
    back NaN: a broken model file)."""


class AttentionUnavailable(EntropicError):
    """Attention was requested but this step's attention was not captured (or not usable)."""

    exit_code = 8


class ChatTemplateError(EntropicError):
    """A chat template that cannot be used (does not parse, fails, unknown name/file).

    ``exit_code`` is 5 (invalid model file) for a template from a GGUF file, 2 (usage) for one
    the user named."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, *, from_model: bool = False):
        super().__init__(message, hint=hint)
        if from_model:
            self.exit_code = 5


class UnsafeTemplateError(ChatTemplateError):
    """A template that reaches for Python internals or files: blocked, never run."""


class EntropicWarning(UserWarning):
    """Something works but not as asked or not as well as it could (a context rounded up by
    llama.cpp, a context past the model's training length). The CLI prints each as one
    ``entropic-local: warning: ...`` line; library users see Python warnings."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised by the command line's signal handler. Handled like Ctrl-C (stop the
    reply, keep and write what was made) but the process then exits with 143 (128 + 15)."""

    exit_code = 143


class QueueFull(EntropicError):
    """The server's queue of waiting requests is full (HTTP 503 with ``Retry-After``)."""

    exit_code = 1


class APIError(EntropicError):
    """A request the server refuses, in OpenAI's error shape: HTTP ``status``, error
    ``type`` (``invalid_request_error``...), the offending ``param`` and a ``code``."""

    exit_code = 2

    def __init__(self, message: str, status: int = 400, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.type = type
        self.param = param
        self.code = code
