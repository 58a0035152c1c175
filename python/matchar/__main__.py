"""``python -m matchar``: the same as the ``matchar`` console script."""

from matchar.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
