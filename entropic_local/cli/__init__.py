"""The ``entropic-local`` command: a thin click layer over the Python API.

``main.py`` holds the group and the entry point (errors to one line and an exit code);
``options.py`` what the commands share; one module per command (``generate``, ``chat``,
``batch``, ``eval``, ``bench``, ``models``, ``plot``), imported when that command runs.
"""

from .main import EXIT_CODES, cli, main

__all__ = ["cli", "main", "EXIT_CODES"]
