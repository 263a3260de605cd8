"""``entropic-local chat``: a terminal chat with the model's uncertainty in colour.

* ``templates``: chat templates (GGUF metadata, built-ins, files) rendered in a sandbox;
* ``session``: the conversation (OpenAI message shape), settings, context trimming,
  /save and /load;
* ``repl``: the interactive prompt (prompt_toolkit), slash commands, streaming output, and
  the non-interactive (piped) mode;
* ``command``: the click command ``chat_command``.
"""

from .. import cli as _cli  # noqa: F401  (cli registers chat_command: import it first, any order works)
from .templates import BUILTIN, ChatTemplate, ChatTemplateError, UnsafeTemplateError, select_template

__all__ = ["BUILTIN", "ChatTemplate", "ChatTemplateError", "UnsafeTemplateError", "select_template"]
