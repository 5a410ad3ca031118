"""The chaos suite: a workload of every kind against a real ``perdure server`` and a real
``perdure.serve`` deployment while both are SIGKILLed, black-holed, sent GOAWAYs and frozen; then
every invocation is checked to have completed exactly once with the right result. See
docs/chaos.md; ``python -m tests.chaos --help`` runs it from the command line."""
