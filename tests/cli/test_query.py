"""``POST /query`` on perdure's admin API: Restate's system tables, derived statuses, journal
columns, JSON conventions, errors, and that it never writes."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.cli.conftest import Deployed

pytestmark = pytest.mark.interop

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def post(d: Deployed, sql: str, accept: str = "application/json") -> httpx.Response:
    return httpx.post(d.admin + "/v4/query", json={"query": sql}, headers={"accept": accept},
                      timeout=30.0)  # fmt: skip


def test_derived_statuses_cover_every_lifecycle_state(perdure: Deployed) -> None:
    for role in ("completed", "running", "pending", "scheduled", "backing-off", "paused",
                 "suspended"):  # fmt: skip
        assert perdure.status(perdure.ids[role]) == role, role
    raw = {
        r["id"]: r["status"] for r in perdure.query("SELECT id, status FROM sys_invocation_status")
    }
    assert raw[perdure.ids["pending"]] == "inboxed"
    assert raw[perdure.ids["running"]] == "invoked"
    assert raw[perdure.ids["backing-off"]] == "invoked"


def test_invocation_columns_follow_restates_json_conventions(perdure: Deployed) -> None:
    [row] = perdure.query(f"SELECT * FROM sys_invocation WHERE id = '{perdure.ids['completed']}'")
    assert row["target"] == "Greeter/greet"
    assert row["target_service_ty"] == "service"
    assert row["completion_result"] == "success"
    assert row["invoked_by"] == "ingress"
    assert RFC3339_MS.match(row["created_at"]) and RFC3339_MS.match(row["completed_at"])
    assert "target_service_key" not in row  # null columns are omitted
    [pending] = perdure.query(
        f"SELECT target, target_service_key, target_service_ty FROM sys_invocation "
        f"WHERE id = '{perdure.ids['pending']}'"
    )
    assert pending == {"target": "Counter/bob/add", "target_service_key": "bob",
                       "target_service_ty": "virtual_object"}  # fmt: skip
    [flaky] = perdure.query(
        f"SELECT last_failure, next_retry_at FROM sys_invocation "
        f"WHERE id = '{perdure.ids['backing-off']}'"
    )
    assert "flaky by design" in flaky["last_failure"]
    assert RFC3339_MS.match(flaky["next_retry_at"])


def test_child_invocations_name_their_caller(perdure: Deployed) -> None:
    rows = perdure.query(
        "SELECT invoked_by, invoked_by_id, invoked_by_target FROM sys_invocation "
        "WHERE target = 'Counter/dan/wait'"
    )
    assert rows == [{"invoked_by": "service", "invoked_by_id": perdure.ids["caller"],
                     "invoked_by_target": "Greeter/relay"}]  # fmt: skip


def test_journal_entries_are_decoded(perdure: Deployed) -> None:
    rows = perdure.query(
        "SELECT index, entry_type, name, version, entry_lite_json, appended_at, raw "
        f"FROM sys_journal WHERE id = '{perdure.ids['caller']}' ORDER BY index"
    )
    types = [r["entry_type"] for r in rows]
    assert types[:3] == ["Command: Input", "Command: Call", "Notification: CallInvocationId"]
    call = json.loads(rows[1]["entry_lite_json"])["Command"]["Call"]
    assert call["invocation_target"] == {"name": "Counter", "key": "dan", "handler": "wait"}
    assert rows[1]["version"] == 2 and rows[1]["name"] == ""
    assert "name" not in rows[2]  # notifications have no name
    assert all(re.fullmatch("[0-9a-f]+", r["raw"]) for r in rows)  # binary as hex
    assert RFC3339_MS.match(rows[0]["appended_at"])


def test_state_inbox_service_and_deployment_views(perdure: Deployed) -> None:
    state = perdure.query("SELECT * FROM state WHERE service_name = 'Counter' "
                          "AND service_key = 'ann'")  # fmt: skip
    assert [(r["key"], r["value_utf8"], r["value"]) for r in state] == [("total", "5", "35")]
    inbox = perdure.query("SELECT service_name, service_key, id FROM sys_inbox")
    assert {"service_name": "Counter", "service_key": "bob", "id": perdure.ids["pending"]} in inbox
    services = {r["name"]: r for r in perdure.query("SELECT * FROM sys_service")}
    assert services["Counter"]["ty"] == "virtual_object"
    assert services["Signup"]["ty"] == "workflow"
    assert services["Greeter"]["public"] is True
    [deployment] = perdure.query("SELECT id, endpoint, ty FROM sys_deployment")
    assert deployment["endpoint"] == perdure.url + "/" and deployment["ty"] == "http"
    assert perdure.query("SELECT * FROM sys_promise") == []


def test_the_sql_the_restate_cli_sends_works(perdure: Deployed) -> None:
    rows = perdure.query(
        "WITH s AS (SELECT status, id FROM sys_invocation) "
        "SELECT status, COUNT(1) AS n, CAST(NULL AS STRING) AS missing FROM s "
        "WHERE status == 'paused' OR id IN (SELECT id FROM sys_inbox LIMIT 5) "
        "GROUP BY status ORDER BY status;"
    )
    assert rows == [{"status": "paused", "n": 1}, {"status": "pending", "n": 1}]


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SELEC 1", "syntax error"),
        ("SELECT nope FROM sys_invocation", "no such column: nope"),
        ("SELECT * FROM sys_nothing", "no such table"),
        ("INSERT INTO state VALUES (1, 'x', 'y', 'k', 1, 'v', 'v', 1)", "read-only"),
        ("DELETE FROM sys_invocation", "cannot modify"),
        ("DROP VIEW sys_invocation", "read-only"),
        ("SELECT 1; DROP TABLE invocations", "one statement"),
    ],
)
def test_bad_or_writing_sql_is_a_400_with_the_reason(
    perdure: Deployed, sql: str, fragment: str
) -> None:
    resp = post(perdure, sql)
    assert resp.status_code == 400
    assert fragment in resp.json()["message"]
    assert perdure.query("SELECT COUNT(*) AS n FROM sys_invocation")[0]["n"] >= 8


def test_only_json_is_produced(perdure: Deployed) -> None:
    resp = post(perdure, "SELECT 1", accept="application/vnd.apache.arrow.stream")
    assert resp.status_code == 406
    assert "application/json" in resp.json()["message"]
    bad = httpx.post(
        perdure.admin + "/query",
        content=b"SELECT 1",
        headers={"content-type": "application/json"},
        timeout=30.0,
    )
    assert bad.status_code == 400 and "query" in bad.json()["message"]
    untyped = httpx.post(perdure.admin + "/query", content=b"SELECT 1", timeout=30.0)
    assert untyped.status_code == 415 and "application/json" in untyped.json()["message"]
