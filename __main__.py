"""``python -m dragkit``: the same as the ``dragkit`` console script."""

from .cli import main

raise SystemExit(main())
