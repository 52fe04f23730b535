"""``python -m dragkit``: the same as the ``dragkit`` console script."""

from .evaluation.cli import main

raise SystemExit(main())
