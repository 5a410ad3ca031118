"""The ledger's duplicate rule: re-executions before an acknowledgement pass, an execution after
it or a changed acknowledged result is reported."""

from __future__ import annotations

from pathlib import Path

from tests.chaos import ledger


def _records(*lines: tuple[str, str]) -> list[dict[str, str]]:
    return [
        {"kind": kind, "inv": "inv_1", "step": "s0", "tag": "t", "token": token}
        for kind, token in lines
    ]


def _violations(*lines: tuple[str, str]) -> list[str]:
    return ledger.step_violations(ledger.step_histories(_records(*lines)))


def test_executions_lost_before_the_acknowledgement_are_allowed() -> None:
    assert _violations(("exec", "a"), ("exec", "b"), ("ack", "b"), ("ack", "b")) == []


def test_an_execution_after_the_acknowledgement_is_a_duplicate() -> None:
    (problem,) = _violations(("exec", "a"), ("ack", "a"), ("exec", "b"))
    assert "executed again after its result was acknowledged" in problem


def test_a_changed_acknowledged_result_is_reported() -> None:
    problems = _violations(("exec", "a"), ("exec", "b"), ("ack", "a"), ("ack", "b"))
    assert any("different results" in p for p in problems)


def test_an_acknowledged_result_no_execution_produced_is_reported() -> None:
    (problem,) = _violations(("exec", "a"), ("ack", "z"))
    assert "never executed" in problem


def test_the_file_round_trips_in_write_order(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    writer = ledger.Ledger(path)
    writer.append("exec", inv="inv_1", step="s0", tag="t", token="a")
    tail = ledger.Tail(path)
    assert [r["token"] for r in tail.new_records()] == ["a"]
    writer.append("ack", inv="inv_1", step="s0", tag="t", token="a")
    assert [r["kind"] for r in tail.new_records()] == ["ack"]
    assert [r["kind"] for r in ledger.read(path)] == ["exec", "ack"]
