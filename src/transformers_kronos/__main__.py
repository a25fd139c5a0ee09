# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""`python -m transformers_kronos ...` is the `kronos-forecast` command; `python -m transformers_kronos evaluate ...`
is `kronos-evaluate`."""

import sys

from .cli import main

if __name__ == "__main__":
    if sys.argv[1:2] == ["evaluate"]:
        from .evaluation_cli import main as evaluate

        sys.exit(evaluate(sys.argv[2:]))
    sys.exit(main())
