"""``python -m matchar``: the same as the ``matchar`` console script."""

from matchar.cli import main

raise SystemExit(main())
