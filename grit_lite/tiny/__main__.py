"""``python -m grit_lite.tiny``: see :mod:`grit_lite.tiny.cli`."""

from grit_lite.tiny.cli import main

if __name__ == "__main__":
    main()
