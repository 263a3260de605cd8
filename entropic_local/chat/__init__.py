"""The terminal chat with the model's uncertainty in colour (``entropic-local chat``; its
click command is ``cli/chat.py``).

* ``templates``: chat templates (GGUF metadata, built-ins, files) rendered in a sandbox, and
  the choice of a model's template;
* ``session``: the conversation (OpenAI message shape), settings, context trimming,
  /save and /load;
* ``repl``: the interactive prompt (prompt_toolkit), slash commands, streaming output, and
  the piped mode.
"""
