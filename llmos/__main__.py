"""``python -m llmos`` is the ``llmos`` command."""

from llmos.cli import run

if __name__ == "__main__":
    run()
