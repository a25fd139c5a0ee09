# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""`python -m transformers_kronos ...` is the `kronos-forecast` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
