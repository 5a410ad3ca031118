"""``python -m perdure.cli``: the ``perdure`` command without the console script."""

from perdure.cli.main import run

run()
