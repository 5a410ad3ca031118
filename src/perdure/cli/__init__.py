"""The ``perdure`` command. ``main(argv) -> int`` so tests call it directly."""

from perdure.cli.main import main, run

__all__ = ["main", "run"]
