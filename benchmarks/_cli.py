"""What the benchmark scripts' entry points share: the package's own errors (an unknown model,
a file that is not a GGUF, a bad sampler spec...) end the script with one line on stderr and
exit status 1, instead of a traceback.

    if __name__ == "__main__":
        run(main, sys.argv[1:])
"""

from __future__ import annotations

import os
import sys

from entropic_local.errors import EntropicError


def run(main, *args):
    """``main(*args)``, with an ``EntropicError`` turned into ``SCRIPT: message`` and exit 1."""
    try:
        return main(*args)
    except EntropicError as e:
        sys.exit(f"{os.path.splitext(os.path.basename(sys.argv[0]))[0]}: {e}")
