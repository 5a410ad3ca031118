"""perdure.testing's public names are curated."""

from __future__ import annotations

import perdure.testing


def test_testing_exports() -> None:
    assert sorted(perdure.testing.__all__) == [
        "Harness",
        "HarnessError",
        "InvocationInfo",
        "JournalEntry",
        "VirtualClock",
        "WallClock",
    ]
    for name in perdure.testing.__all__:
        assert hasattr(perdure.testing, name), name
