"""``python -m entropic_local.cli ARGS``: the ``entropic-local`` command."""

from .main import main

if __name__ == "__main__":
    main()
