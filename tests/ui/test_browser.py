"""The web UI in a real browser (Debian's Chromium through Playwright) against a real
``perdure server`` process with real services (tests/ui/services.py): what a user does in it,
checked through the admin and ingress APIs."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.support.perdure_server import wait_until
from tests.ui.conftest import Deployed


def _ms(text: str) -> float:
    """A duration as the UI writes it (``+12 ms``, ``+1.25 s``) in milliseconds."""
    match = re.fullmatch(r"\+?([\d.]+) (ms|s)", text.strip())
    assert match, f"not a duration: {text!r}"
    value = float(match.group(1))
    return value if match.group(2) == "ms" else value * 1000


def test_find_an_invocation_and_read_its_timeline(deployed: Deployed, page: Any) -> None:
    answer = deployed.call("Greeter/greet", "Ann")
    assert answer.status_code == 200
    invocation_id = answer.headers["x-restate-id"]

    page.goto(deployed.ui())
    page.fill("form.filters input[name=service]", "Greeter")
    page.fill("form.filters input[name=handler]", "greet")
    page.click("form.filters button[type=submit]")
    row = page.locator(f'tr[data-id="{invocation_id}"]')
    expect(row).to_contain_text("Greeter/greet")
    expect(row).to_contain_text("completed")
    expect(page.locator(".counts")).to_contain_text("completed")
    (total,) = deployed.query(
        "SELECT COUNT(*) AS n FROM sys_invocation "
        "WHERE target_service_name = 'Greeter' AND target_handler_name = 'greet'"
    )
    expect(page.locator(".count").first).to_have_text(f"all{total['n']}")
    row.locator("a").first.click()

    expect(page.locator(".inv-title h1")).to_have_text("Greeter/greet")
    expect(page.locator(".facts")).to_contain_text("success")
    entries = page.locator("table.timeline tbody tr.entry")
    types = [t.strip() for t in page.locator("table.timeline .etype").all_inner_texts()]
    assert types[0] == "Input" and types[-1] == "Output"
    assert {"Run", "Sleep"} <= set(types)
    input_row = entries.filter(has_text="Input").first
    expect(input_row.locator("code.json")).to_have_text('"Ann"')
    run_row = page.locator("table.timeline tr.command", has_text="Run")
    expect(run_row).to_contain_text("stamp")
    expect(run_row.locator("td.details")).to_contain_text('"stamp-Ann"')
    output = page.locator("table.timeline tr.command", has_text="Output").locator("td.details")
    expect(output).to_contain_text('"greeting":"Hello, Ann!"')
    # Times: the sleep of 300 ms is drawn as a span and the output comes after it.
    sleep_row = page.locator("table.timeline tr.command", has_text="Sleep")
    expect(sleep_row.locator(".span.sleep")).to_have_count(1)
    took = sleep_row.locator(".field", has_text="took").inner_text().split("took", 1)[1]
    assert _ms(took) >= 290
    output_at = page.locator("table.timeline tr.command", has_text="Output").locator("td.time")
    assert _ms(output_at.inner_text()) >= 290
    journal = deployed.query(
        f"SELECT index, appended_at FROM sys_journal WHERE id = '{invocation_id}' ORDER BY index"
    )
    assert entries.count() == len(journal)

    # A time range in the future matches nothing; one around now finds it again.
    page.goto(deployed.ui("#/invocations?service=Greeter&from=2999-01-01T00:00"))
    expect(page.locator("table.invocations tbody")).to_contain_text("No invocations match.")
    page.goto(
        deployed.ui("#/invocations?service=Greeter&from=2000-01-01T00:00&to=2999-01-01T00:00")
    )
    expect(page.locator(f'tr[data-id="{invocation_id}"]')).to_be_visible()


def test_cancel_a_blocked_invocation(deployed: Deployed, page: Any) -> None:
    invocation_id = deployed.send("Greeter/nap", 3600)
    deployed.wait_status(invocation_id, "suspended")
    page.goto(deployed.ui(f"#/invocation/{invocation_id}"))
    expect(page.locator(".facts .pill")).to_have_text("suspended")
    sleep_row = page.locator("table.timeline tr.command", has_text="Sleep")
    expect(sleep_row.locator(".span.sleep.open")).to_have_count(1)
    expect(sleep_row).to_contain_text("wakes in 1h")
    expect(page.locator(".waiting")).to_contain_text("a sleep (#1) that wakes in 1h")
    page.click("button[data-verb=cancel]")
    row = deployed.wait_status(invocation_id, "completed")
    assert row["completion_result"] == "failure"
    assert "cancel" in row["completion_failure"]
    expect(page.locator(".facts .pill")).to_have_text("failed")


def test_bulk_cancel_from_the_list(deployed: Deployed, page: Any) -> None:
    ids = [deployed.send("Greeter/nap", 3000 + n) for n in range(3)]
    for invocation_id in ids:
        deployed.wait_status(invocation_id, "suspended")
    page.goto(deployed.ui("#/invocations?service=Greeter&handler=nap&status=suspended"))
    for invocation_id in ids:
        page.locator(f'tr[data-id="{invocation_id}"] input[type=checkbox]').check()
    expect(page.locator(".bulk")).to_contain_text("3 selected")
    page.click(".bulk button[data-verb=cancel]")
    for invocation_id in ids:
        assert deployed.wait_status(invocation_id, "completed")["completion_result"] == "failure"
    expect(page.locator(f'tr[data-id="{ids[0]}"]')).to_have_count(0)


def test_edit_a_state_entry_and_read_it_back_through_a_handler(
    deployed: Deployed, page: Any
) -> None:
    assert deployed.call("Counter/edit-me/add", 5).json() == 5
    page.goto(deployed.ui("#/state?service=Counter"))
    page.click("text=edit-me")
    count = page.locator('tr[data-entry="count"]')
    expect(count.locator("td.value")).to_have_text("5")
    expect(page.locator('tr[data-entry="last"] td.value')).to_contain_text('{"added":5}')
    count.locator("button", has_text="edit").click()
    expect(count.locator("textarea")).to_have_value("5")
    count.locator("textarea").fill("42")
    count.locator("button", has_text="Save").click()
    wait_until(lambda: deployed.call("Counter/edit-me/get").json() == 42, "the edited count")
    expect(page.locator('tr[data-entry="count"] td.value')).to_have_text("42")
    # A stale version is refused: change the state behind the page's back, then save.
    page.locator('tr[data-entry="count"] button', has_text="edit").click()
    assert deployed.call("Counter/edit-me/add", 1).json() == 43
    page.locator('tr[data-entry="count"] textarea').fill("7")
    page.locator('tr[data-entry="count"] button', has_text="Save").click()
    expect(page.locator("#toast")).to_contain_text("changed since version")
    assert deployed.call("Counter/edit-me/get").json() == 43


def test_a_workflow_key_shows_its_state_and_promises(deployed: Deployed, page: Any) -> None:
    run = deployed.send("Signup/ann@example.com/run", "ann@example.com")
    assert deployed.call("Signup/ann@example.com/confirm", "c0de").status_code == 200
    deployed.wait_status(run, "completed")
    page.goto(deployed.ui("#/state?service=Signup"))
    page.click("text=ann@example.com")
    expect(page.locator('tr[data-entry="confirmed"] td.value')).to_have_text('"c0de"')
    expect(page.locator(".promises")).to_contain_text("code")
    expect(page.locator(".promises")).to_contain_text('"c0de"')


def test_call_a_handler_from_the_form(deployed: Deployed, page: Any) -> None:
    page.goto(deployed.ui("#/services/Greeter"))
    card = page.locator('.handler[data-handler="greet"]')
    card.locator("textarea").fill('"Form"')
    card.locator("input[name=idempotency]").fill("form-call-1")
    card.locator("button", has_text="Call").click()
    result = card.locator(".call-result")
    expect(result).to_contain_text("200")
    expect(result).to_contain_text("Hello, Form!")
    rows = deployed.query(
        "SELECT id, status FROM sys_invocation WHERE idempotency_key = 'form-call-1'"
    )
    assert len(rows) == 1 and rows[0]["status"] == "completed"
    expect(result.locator("a")).to_have_text(rows[0]["id"])
    # With a delay, the form sends: the invocation is scheduled.
    nap = page.locator('.handler[data-handler="nap"]')
    nap.locator("textarea").fill("5")
    nap.locator("input[name=delay]").fill("1h")
    nap.locator("button", has_text="Call").click()
    expect(nap.locator(".call-result")).to_contain_text("Accepted")
    scheduled = nap.locator(".call-result a").inner_text()
    assert deployed.invocation(scheduled)["status"] == "scheduled"
    httpx.patch(f"{deployed.admin}/invocations/{scheduled}/kill").raise_for_status()
    # A handler without input, on an object key: no body, no content type reaches it.
    page.goto(deployed.ui("#/services/Counter"))
    get = page.locator('.handler[data-handler="get"]')
    get.locator("input[name=key]").fill("form-get")
    get.locator("button", has_text="Call").click()
    expect(get.locator(".call-result")).to_contain_text("200")
    expect(get.locator(".call-result .output")).to_have_text("0")
    page.goto(deployed.ui("#/services/Greeter"))
    # The options (the service's, and what a handler sets itself) and the schemas are shown.
    expect(page.locator("dl.options.wide")).to_contain_text("retry policy")
    expect(page.locator('.handler[data-handler="nap"] dl.options')).to_contain_text(
        "journal retention2h"
    )
    card.locator("summary", has_text="input schema").click()
    expect(card.locator("pre.json").first).to_contain_text('"type"')


def test_call_tree_failure_and_deadlock(deployed: Deployed, page: Any) -> None:
    parent = deployed.call("Greeter/fan", ["Kid1", "Kid2"])
    assert parent.status_code == 200
    parent_id = parent.headers["x-restate-id"]
    page.goto(deployed.ui(f"#/invocation/{parent_id}"))
    children = page.locator(".tree a", has_text="Greeter/greet")
    expect(children).to_have_count(2)
    children.first.click()
    expect(page.locator(".inv-title h1")).to_have_text("Greeter/greet")
    expect(page.locator(".tree")).to_contain_text("parent")
    expect(page.locator(".tree a").first).to_have_text("Greeter/fan")

    flaky = deployed.send("Greeter/flaky", "engine")
    wait_until(lambda: deployed.invocation(flaky).get("retry_count", 0) >= 1, "a failed attempt")
    # The list's "failing" chip finds it.
    page.goto(deployed.ui("#/invocations"))
    page.locator(".count.attention").click()
    expect(page.locator(f'tr[data-id="{flaky}"]')).to_contain_text("backing-off")
    page.locator(f'tr[data-id="{flaky}"] a').click()
    box = page.locator(".failure-box")
    expect(box).to_contain_text("the engine is broken")
    expect(box.locator("pre")).to_contain_text("RuntimeError")
    expect(page.locator(".facts")).to_contain_text("next retry")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("button[data-verb=kill]")
    deployed.wait_status(flaky, "completed")

    stuck = deployed.send("Counter/loop/recount")
    wait_until(lambda: httpx.get(f"{deployed.admin}/invocations/{stuck}").json().get("deadlock"),
               "the deadlock to be detected")  # fmt: skip
    page.goto(deployed.ui(f"#/invocation/{stuck}"))
    expect(page.locator(".deadlock")).to_contain_text("Deadlock")
    expect(page.locator(".deadlock .cycle a")).to_have_count(1)
    expect(page.locator(".waiting")).to_contain_text("the call #1 to Counter/loop/add (pending)")
    # The call it waits for is queued behind it: its page says so.
    page.locator(".waiting a").click()
    expect(page.locator(".waiting")).to_contain_text("queued behind Counter/loop/recount")
    # The state page of the key shows the call queued on it.
    (queued,) = [
        i
        for i in httpx.get(f"{deployed.admin}/invocations/{stuck}").json()["deadlock"]["cycle"]
        if i != stuck
    ]
    page.goto(deployed.ui("#/state?service=Counter&key=loop"))
    expect(page.locator(".queue")).to_contain_text(queued)
    page.goto(deployed.ui(f"#/invocation/{stuck}"))
    page.click("button[data-verb=kill]")
    deployed.wait_status(stuck, "completed")


def test_live_updates_without_reloading(deployed: Deployed, page: Any) -> None:
    page.goto(deployed.ui("#/invocations?service=Counter&key=live"))
    expect(page.locator("table.invocations tbody")).to_contain_text("No invocations match.")
    page.evaluate("window.__notReloaded = true")
    answer = deployed.call("Counter/live/add", 1)
    invocation_id = answer.headers["x-restate-id"]
    expect(page.locator(f'tr[data-id="{invocation_id}"]')).to_contain_text("completed")
    assert page.evaluate("window.__notReloaded") is True
    # One invocation's page follows it as it runs.
    nap = deployed.send("Greeter/nap", 2)
    page.goto(deployed.ui(f"#/invocation/{nap}"))
    page.evaluate("window.__notReloaded = true")
    expect(page.locator(".facts .pill")).to_have_text("completed", timeout=20_000)
    expect(page.locator("table.timeline")).to_contain_text('"rested"')
    assert page.evaluate("window.__notReloaded") is True


def test_sql_console(deployed: Deployed, page: Any) -> None:
    page.goto(deployed.ui("#/sql"))
    page.click("ul.tables a:text('sys_service')")
    expect(page.locator("table.results")).to_contain_text("Greeter")
    count = "SELECT COUNT(*) AS n FROM sys_invocation WHERE target_service_name = 'Counter'"
    page.fill("textarea.sql", count)
    page.keyboard.press("Control+Enter")
    expect(page.locator("table.results th")).to_have_text("n")
    page.fill("textarea.sql", "DELETE FROM state")
    page.click("button:text('Run')")
    expect(page.locator(".error-box")).to_contain_text("invalid query")


def test_the_ui_is_served_with_its_assets_and_can_be_turned_off(deployed: Deployed) -> None:
    root = httpx.get(deployed.admin + "/")
    assert root.status_code == 307 and root.headers["location"] == "/ui/"
    index = httpx.get(deployed.admin + "/ui/")
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    assets = re.findall(r'(?:src|href)="([^"#]+)"', index.text)
    assert "js/main.js" in assets
    for asset in assets:
        assert httpx.get(f"{deployed.admin}/ui/{asset}").status_code == 200, asset
    assert httpx.get(deployed.admin + "/ui/nope.js").status_code == 404
    # The admin API is unchanged behind it.
    assert httpx.get(deployed.admin + "/health").status_code == 200
