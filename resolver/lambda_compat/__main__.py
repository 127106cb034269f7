"""``python -m lambda_compat``: the same as the ``lambda-compat`` command."""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
