"""Pages that change by themselves, in real Chromium: a pending request turns into its result in place,
within a second of the result being logged, whichever frontend serves the page; the status page
updates in place and can be paused; without JavaScript both still reload themselves."""

from __future__ import annotations

import threading
import time

from harness import client
from harness.browser import accessibility_violations
from harness.fixtures import read_log
from qcompute.accounts import AccountStore

LIVE_TARGET_SECONDS = 1.0
PASSWORD = "root-password-8901"


def _first_seen_in_log(stack, request_id: str, seen: dict[str, float], stop: threading.Event) -> None:
    while not stop.is_set() and "at" not in seen:
        if read_log(stack, request_id) is not None:
            seen["at"] = time.time()
        time.sleep(0.05)


def test_a_pending_page_becomes_its_result_in_place_from_another_frontend(
    stack, run, chromium, page_screenshots
) -> None:
    run.logger()
    submitter = run.frontend("frontend-a", REPLY_WAIT_SECONDS=0)
    viewer = run.frontend("frontend-b")
    request_id = client.submit(submitter.url, [5, 1, 4], ["sum", "median"]).json()["id"]

    page = chromium.new_page()
    navigations: list[str] = []
    # The page on frontend B: the reply goes to A's reply queue, so B learns of it from the S3 log.
    page.goto(f"{viewer.url}/requests/{request_id}")
    assert page.inner_text("h1") == "Still computing…"
    assert not accessibility_violations(page)
    page.screenshot(path=page_screenshots / "en-desktop-pending.png", full_page=True)
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.evaluate("window.samePage = true")
    # The moment the result row appears, in the page's own clock (the same machine's).
    page.evaluate(
        """() => new MutationObserver((_, observer) => {
             if (!document.getElementById("result-sum")) return;
             window.shownAt = Date.now();
             observer.disconnect();
           }).observe(document.body, { childList: true, subtree: true })"""
    )

    seen: dict[str, float] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_first_seen_in_log, args=(stack, request_id, seen, stop))
    watcher.start()
    try:
        run.worker()
        page.wait_for_selector("#result-sum", timeout=60_000)
    finally:
        stop.set()
        watcher.join()

    assert page.inner_text("#result-sum td") == "10"
    assert page.evaluate("window.samePage") is True, "the page was reloaded"
    assert navigations == [], "the page navigated"
    assert page.evaluate("document.activeElement.tagName") == "H1", "focus moves to the new heading"
    delay = page.evaluate("window.shownAt") / 1000 - seen["at"]
    print(f"shown {delay:.2f} s after the log object appeared")
    # The target is 1 s (typically 0.2-0.6 s here). A loaded CI machine gets twice that: still far below
    # the 5 s reload and the 20 s long poll, so only the log-reading wake-up can pass.
    assert delay < 2 * LIVE_TARGET_SECONDS
    page.screenshot(path=page_screenshots / "en-desktop-result-live.png", full_page=True)
    page.close()


def test_without_javascript_a_pending_page_still_reloads_itself(stack, run, chromium) -> None:
    run.logger()
    front = run.frontend(REPLY_WAIT_SECONDS=0)
    request_id = client.submit(front.url, [2, 3], ["product"]).json()["id"]
    context = chromium.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{front.url}/requests/{request_id}")
        assert page.inner_text("h1") == "Still computing…"
        run.worker()
        page.wait_for_selector("#result-product", timeout=60_000)
        assert page.inner_text("#result-product td") == "6"
    finally:
        context.close()


def test_the_status_page_updates_in_place_until_paused(stack, run, chromium) -> None:
    run.worker()
    run.logger()
    front = run.frontend()
    page = chromium.new_page()
    page.goto(front.url + "/status")
    assert not accessibility_violations(page), "no <meta> refresh, nothing else serious"
    page.evaluate("window.samePage = true")
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/status" in request.url else None)

    request_id = client.compute(front.url, [1, 2], ["sum"])["id"]
    page.wait_for_selector(f"#recent tr[data-id='{request_id}']", timeout=60_000)
    assert page.evaluate("window.samePage") is True, "updated in place, not reloaded"
    assert asked, "the page asked for its update"

    page.uncheck("#live-updates")
    page.wait_for_timeout(500)  # a fetch already under way may still land (and Playwright's events)
    paused_at = len(asked)
    page.wait_for_timeout(12_000)  # more than two rounds of updates
    assert len(asked) == paused_at, "paused: no more updates"
    page.check("#live-updates")
    page.wait_for_event("request", lambda request: "/status" in request.url, timeout=30_000)
    page.close()


def test_a_status_page_whose_session_ends_goes_to_the_sign_in_page(stack, run, chromium) -> None:
    """Signed out in another tab: the next update meets the sign-in page and the browser goes there,
    instead of putting it in place of the status page and asking on and on."""
    AccountStore(stack.clients.ssm, stack.clients.names).create("root", password=PASSWORD, admin=True)
    front = run.frontend(ACCESS_MODE="accounts", ACCOUNTS_REFRESH_SECONDS="0.5")
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(front.url + "/signin?next=/status")
        page.fill("#name", "root")
        page.fill("#password", PASSWORD)
        page.click("#sign-in")
        page.wait_for_selector("#live-updates")
        asked: list[str] = []
        page.on("request", lambda request: asked.append(request.url))

        other = context.new_page()
        other.goto(front.url + "/")
        other.click("#sign-out")
        other.close()

        page.wait_for_url("**/signin**", timeout=30_000)
        page.wait_for_timeout(12_000)  # two more rounds of updates, were any still running
        settled = len(asked)
        page.wait_for_timeout(6_000)
        assert len(asked) == settled, f"still asking: {asked[settled:]}"
        assert page.inner_text("h1") == "Sign in"
    finally:
        context.close()
