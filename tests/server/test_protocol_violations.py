"""A deployment that breaks the protocol fails its attempt (571) and is retried per its policy;
nothing it sends passes as a successful completion. The deployment is
``tests.server.fake_deployment`` (raw frames over HTTP/1.1; 2 attempts, then kill).

(Not compared with the official server: 1.7.12 panics on the End-without-Output stream, "There
should be a journal entry at index 0", and stops answering.)"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.server.conftest import Deployed, deployed

pytestmark = pytest.mark.interop

SERVICES = "tests.server.fake_deployment:app"


def attempts(d: Deployed) -> Counter[str]:
    return Counter(d.effect_lines("attempts"))


def test_protocol_violations_fail_the_attempt_as_571_and_are_retried(tmp_path: Path) -> None:
    with deployed(tmp_path, use_http_11=True, services=SERVICES) as d:
        assert d.client.post("/Fake/ok", json=None).json() == "out"
        assert attempts(d)["ok"] == 1
        expected = {
            "end_without_output": "End without an Output",
            "two_outputs": "a second Output",
            "unknown_run": "no Run command awaits",
        }
        for handler, words in expected.items():
            answer = d.client.post(f"/Fake/{handler}", json=None)
            assert answer.status_code == 571, answer.text
            assert words in answer.json()["message"], answer.text
            assert attempts(d)[handler] == 2  # retried per the policy, then killed


def test_times_beyond_what_the_server_keeps_are_rejected_cleanly(tmp_path: Path) -> None:
    with deployed(tmp_path, use_http_11=True, services=SERVICES) as d:
        for handler in ("sleep_forever", "send_at_the_end_of_time"):
            answer = d.client.post(f"/Fake/{handler}", json=None)
            assert answer.status_code == 571, answer.text
            assert "beyond the largest time" in answer.json()["message"], answer.text
        assert "Traceback" not in d.server.child.log_path.read_text()
