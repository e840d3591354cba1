"""``python -m propy``: the command line (``propy.cli``)."""

from propy.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
