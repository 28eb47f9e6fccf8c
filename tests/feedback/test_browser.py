"""A real browser: Playwright drives Debian's headless chromium against `rlhfkit serve` on loopback.
An annotator logs in from their link and judges pairs with the keyboard only; the rows must appear
in the database. One response carries script/HTML payloads, which must show as text and never run.

    pytest tests/feedback/test_browser.py

Needs /usr/bin/chromium (scripts/install.sh installs Debian's package) and the `playwright` pip
package; `playwright install` is never run. Skipped when either is missing, except in CI.
"""


import pytest
from feedback_helpers import ADMIN, running_server
from sqlalchemy import select

from rlhfkit.feedback import service
from rlhfkit.feedback.store import Assignment, Judgment, Store

XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


@pytest.mark.slow
def test_keyboard_judging_lands_in_the_database(browser, tmp_path, make_campaign):
    db = str(tmp_path / "f.db")
    store = Store.open(db)
    make_campaign(store, n_prompts=4, overlap=1, texts={0: [XSS, "plain answer"], 1: [XSS, "x"], 2: [XSS, "y"],
                                                          3: [XSS, "z"]})
    token = service.add_annotator(store, "alice", campaigns=["c"])
    bob = service.add_annotator(store, "bob", campaigns=["c"])
    with running_server(db) as url:
        page = browser.new_page()
        page.goto(f"{url}/login#token={token}")
        page.wait_for_url(f"{url}/annotate")
        page.locator("#prompt").filter(has_text="prompt").wait_for()

        def current_prompt():
            return page.locator("#prompt").inner_text()

        def submit_and_wait(before):
            page.keyboard.press("Enter")
            page.wait_for_function("(p) => document.getElementById('prompt').textContent !== p"
                                   " || !document.getElementById('done').hidden", arg=before)

        # 1) A is better: "1", Enter
        assert page.locator(".response .text").first.inner_text() in (XSS, "plain answer", "x", "y", "z")
        assert page.locator(".response .text").filter(has_text=XSS).count() == 1  # the payload shows as text...
        assert page.evaluate("window.__xss") is None  # ...and never ran
        first = current_prompt()
        page.keyboard.press("1")
        submit_and_wait(first)
        # 2) B is better, but A wins on the first criterion: a close call, so a rationale is required
        second = current_prompt()
        page.keyboard.press("2")
        page.keyboard.press("c")
        page.keyboard.press("1")
        page.keyboard.press("Escape")
        page.keyboard.press("Enter")
        page.locator("#status.error").filter(has_text="rationale").wait_for()  # and the box has focus
        page.keyboard.type("B answers the question; A is <b>clearer</b> but off topic")
        page.keyboard.press("Escape")
        submit_and_wait(second)
        # 3) tie, with a rationale; 4) skip
        third = current_prompt()
        page.keyboard.press("t")
        page.keyboard.press("r")
        page.keyboard.type("equally good")
        page.keyboard.press("Control+Enter")
        page.wait_for_function("(p) => document.getElementById('prompt').textContent !== p", arg=third)
        page.keyboard.press("s")
        page.locator("#done").wait_for(state="visible")
        assert page.evaluate("window.__xss") is None

        # bob's link, opened in alice's browser, asks first; staying keeps alice, switching makes bob
        page.goto(f"{url}/login#token={bob}")
        page.locator("#switch-text").filter(has_text="logged in as alice").wait_for()
        page.click("#switch-no")
        page.wait_for_url(f"{url}/annotate")
        assert page.locator(".who").inner_text() == "alice"
        page.goto(f"{url}/login#token={bob}")
        page.click("#switch-yes")
        page.wait_for_url(f"{url}/annotate")
        page.locator(".who").filter(has_text="bob").wait_for()
        page.click("#logout")  # revokes the session on the server
        page.wait_for_url(f"{url}/login")
        page.goto(f"{url}/annotate")
        page.wait_for_url(f"{url}/login")

        # the admin view shows the numbers, with the same payloads as inert text
        admin = browser.new_page()
        admin.goto(f"{url}/login#token={ADMIN}")
        admin.wait_for_url(f"{url}/admin")
        admin.locator("#annotators tbody tr").first.wait_for()
        assert "alice" in admin.locator("#annotators").inner_text()
        assert "Krippendorff" in admin.locator("#agreement").inner_text()

    with store.read() as s:
        judgments = list(s.scalars(select(Judgment).order_by(Judgment.id)))
        orders = [s.get(Assignment, j.assignment_id).order for j in judgments]
    assert [j.outcome for j in judgments] == ["ranked", "ranked", "tie", "skip"]
    assert judgments[0].ranking == orders[0]  # "1": the left response first
    assert judgments[1].ranking == orders[1][::-1]  # "2": the right one
    assert judgments[1].criteria["helpfulness"] == orders[1][0]  # "c" then "1": criterion 1 to A
    assert judgments[1].criteria["clarity"] == orders[1][1]  # the others follow the overall choice
    assert judgments[1].rationale == "B answers the question; A is <b>clearer</b> but off topic"
    assert judgments[2].criteria == {k: "tie" for k in ("helpfulness", "neutrality", "clarity", "harmlessness")}
    assert all(j.seconds > 0 for j in judgments[:3])
    store.dispose()


@pytest.mark.slow
def test_the_page_says_when_a_lease_ran_out(browser, tmp_path, make_campaign):
    """The app in this process (so its store's clock is the test's): alice's page shows a task; her
    lease runs out and bob takes the only slot; her answer gets the 409, and the page says so and
    moves on to her next task (here: none left) instead of retrying."""
    import threading
    import time
    from datetime import datetime, timedelta

    import uvicorn
    from feedback_helpers import free_port

    from rlhfkit.feedback.app import create_app

    store = Store.open(str(tmp_path / "f.db"))
    now = [datetime(2026, 12, 1, 9, 0)]
    store.clock = lambda: now[0]
    make_campaign(store, n_prompts=1, overlap=1)
    alice, bob = (service.add_annotator(store, n, campaigns=["c"]) for n in ("alice", "bob"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    try:
        page = browser.new_page()
        page.goto(f"{url}/login#token={alice}")
        page.wait_for_url(f"{url}/annotate")
        page.locator("#prompt").filter(has_text="prompt").wait_for()
        first = page.locator("#prompt").inner_text()
        now[0] += timedelta(minutes=31)
        taken = service.next_task(store, service.annotator_for_token(store, bob).id, "c")
        assert taken["prompt"] == first
        page.keyboard.press("1")
        page.keyboard.press("Enter")
        page.locator("#done").wait_for(state="visible")  # the next task: none left for her
        assert "ran out" in page.locator("#notice").inner_text() and page.locator("#notice").is_visible()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    with store.read() as s:
        assert s.scalar(select(Judgment.id)) is None  # alice's late answer was not stored
    store.dispose()
