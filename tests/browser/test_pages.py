"""Every page of the site in real Chromium, at desktop width and at a phone's 390 px, in each language:
no horizontal scrolling, a navigation that fits, no serious or critical axe-core finding, no script
error or CSP violation; a screenshot of each in test-artifacts/screenshots/pages. And a submission made
with the keyboard alone, its focus visible at every step.

The services run as processes on the embedded emulator (the `stack` and `run` fixtures)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from harness import client
from harness.browser import PHONE_VIEWPORT, accessibility_violations, horizontal_overflow
from harness.waiting import eventually
from qcompute import contract
from qcompute.accounts import AccountStore

pytestmark = pytest.mark.integration

# The languages the pages are checked in: each is the browser's locale (Accept-Language) for a visit.
LANGUAGES = ["en", "fr"]
DESKTOP_VIEWPORT = {"width": 1100, "height": 800}
WIDTHS = {"desktop": DESKTOP_VIEWPORT, "phone": PHONE_VIEWPORT}
PASSWORDS = {"alice": "alice-password-123", "root": "root-password-8901"}
# The history shows this many entries a page, so that a few requests make a page 2.
HISTORY_PAGE_SIZE = 3

# Links and buttons of the header that are not shown, lie outside the viewport or are covered.
NAVIGATION_PROBLEMS = """() => {
  const width = document.documentElement.clientWidth;
  const problems = [];
  for (const element of document.querySelectorAll("header a, header button")) {
    const box = element.getBoundingClientRect();
    const name = element.textContent.trim();
    if (box.width === 0 || box.height === 0) { problems.push(`${name}: not shown`); continue; }
    if (box.left < 0 || box.right > width + 0.5) {
      problems.push(`${name}: from ${box.left} to ${box.right} px, the viewport is ${width} px wide`);
      continue;
    }
    const found = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
    if (!element.contains(found)) problems.push(`${name}: covered or clipped`);
  }
  return problems;
}"""
# Boxes that scroll or clip sideways: the page fits only if its parts do too (a table in a scrolling
# box would pass the page's own test, and still make a phone user scroll sideways). A box of 1 px is
# text hidden for the eye but kept for screen readers.
SIDEWAYS_BOXES = """() => [...document.querySelectorAll("body *")]
  .filter(element => element.clientWidth > 1 && element.scrollWidth > element.clientWidth + 1
    && getComputedStyle(element).overflowX !== "visible")
  .map(element => `${element.tagName.toLowerCase()}${element.id ? "#" + element.id : ""}`
    + ` is ${element.scrollWidth} px wide in ${element.clientWidth} px`)"""
# Why the focused element is not visibly focused ("" when it is): an outline of at least 2 px (WCAG's
# focus appearance; the browser's default ring is 1 px, and barely shows on the blue Compute button)
# or a box-shadow.
UNSEEN_FOCUS = """() => {
  const element = document.activeElement;
  if (!element || element === document.body) return "nothing has the focus";
  const style = getComputedStyle(element);
  const outlined = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2;
  if (outlined || style.boxShadow !== "none") return "";
  return `${element.outerHTML.slice(0, 80)} has no focus style: outline ${style.outlineStyle} `
    + `${style.outlineWidth}, box-shadow ${style.boxShadow}`;
}"""


@dataclass(frozen=True)
class Visit:
    """A page: how a fresh browser context arrives at it."""

    name: str
    arrive: Callable[[Any], Any]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_page_fits_a_phone_and_passes_axe(language, stack, run, chromium, page_screenshots) -> None:
    run.logger()
    # The worker starts late: until then requests stay pending (REPLY_WAIT_SECONDS=1: the form's
    # answer does not wait long), and a frontend whose pending timeout is 1 s calls them expired.
    front = run.frontend(REPLY_WAIT_SECONDS=1, HISTORY_PAGE_SIZE=HISTORY_PAGE_SIZE)
    expiring = run.frontend("front-expiring", PENDING_TIMEOUT_SECONDS=1)
    store = AccountStore(stack.clients.ssm, stack.clients.names)
    store.create("alice", password=PASSWORDS["alice"])
    store.create("root", password=PASSWORDS["root"], admin=True)
    accounts = run.frontend("front-accounts", ACCESS_MODE="accounts", ACCOUNTS_REFRESH_SECONDS="0.5")

    pending = _submitted(front.url, [6, 7], ["product"])
    cancelled = _submitted(front.url, [2, 3, 4], ["sum"])
    assert client.cancel(front.url, cancelled).status_code == 202
    eventually(
        lambda: client.result(expiring.url, pending).status_code == 410, what="the request expired there"
    )
    problems = _visit_all(
        chromium,
        language,
        page_screenshots,
        [
            Visit("form", _goto(front.url + "/", "#numbers")),
            Visit("form-error", _submit_form(front.url, "1 2 three 4", "#numbers-error")),
            Visit("form-no-operation", _submit_form(front.url, "1 2 3", "#operations-error", untick=True)),
            Visit("pending", _goto(f"{front.url}/requests/{pending}", "#cancel")),
            Visit("expired", _goto(f"{expiring.url}/requests/{pending}", "#status.error")),
        ],
    )

    run.worker()
    assert client.until_done(front.url, pending)["status"] == "done"
    assert client.until_done(front.url, cancelled)["status"] == "cancelled"
    small = client.compute(front.url, [3, 1, 4, 1, 5, 9, 2, 6])["id"]
    numbers = [random.randint(-(10**18), 10**18) for _ in range(300)]
    # The answer itself: another process may not have the result yet (it reads the log).
    long_answer = client.compute(front.url, numbers)
    long = long_answer["id"]
    assert len(str(long_answer["results"]["product"])) > 500
    # The history reads the log, which the logger writes a moment after the reply.
    eventually(lambda: _history(front.url)["next"], what="a second page of history")
    unknown = contract.new_request_id(b"another stack's secret")

    problems += _visit_all(
        chromium,
        language,
        page_screenshots,
        [
            Visit("result", _goto(f"{front.url}/requests/{small}", "#result-sum")),
            Visit("result-long", _goto(f"{front.url}/requests/{long}", "#result-sorted")),
            Visit("result-long-open", _goto(f"{front.url}/requests/{long}", "#result-sorted", open_all=True)),
            Visit("cancelled", _goto(f"{front.url}/requests/{cancelled}", "#request-error")),
            Visit("history", _goto(front.url + "/history", "#older")),
            Visit("history-older", _older(front.url)),
            Visit("status", _goto(front.url + "/status", "#queues")),
            Visit("not-found", _goto(f"{front.url}/requests/{unknown}", "p.error")),
            Visit("signin", _goto(accounts.url + "/signin", "#sign-in")),
            Visit("signin-error", _signed_in(accounts.url, "alice", "/", "#signin-error", password="wrong")),
            Visit("user-form", _signed_in(accounts.url, "alice", "/", "#numbers")),
            Visit("user-history", _signed_in(accounts.url, "alice", "/history", "#history-empty")),
            Visit("admin-history", _signed_in(accounts.url, "root", "/history", "#history")),
            Visit("admin-status", _signed_in(accounts.url, "root", "/status", "#queues")),
        ],
    )
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_keyboard_alone_submits_the_form(language, stack, run, chromium, page_screenshots) -> None:
    run.worker()
    run.logger()
    front = run.frontend()
    context = chromium.new_context(locale=language, viewport=DESKTOP_VIEWPORT)
    try:
        page = context.new_page()
        page.goto(front.url + "/")
        keys = page.keyboard

        _tab_to(page, "#numbers")
        keys.type("3 1 4 1 5 9 2 6")
        _tab_to(page, "[data-check=none]")
        keys.press("Enter")
        assert page.locator("input[name=operations]:checked").count() == 0, "'none' unticked them all"
        for operation in ("sum", "median"):
            _tab_to(page, f"input[value={operation}]")
            keys.press("Space")
        _tab_to(page, "input[value=max]", backwards=True)
        keys.press("Space")
        _tab_to(page, "#submit")
        page.screenshot(path=page_screenshots / f"{language}-keyboard-form.png", full_page=True)
        keys.press("Enter")

        page.wait_for_selector("#result-sum")
        rows = page.locator("table.results tbody tr")
        assert [rows.nth(i).get_attribute("id") for i in range(rows.count())] == [
            "result-sum",
            "result-max",
            "result-median",
        ]
        assert page.inner_text("#result-sum td") == "31"
        assert page.inner_text("#result-max td") == "9"
        assert page.inner_text("#result-median td") == "3.5"
        page.screenshot(path=page_screenshots / f"{language}-keyboard-result.png", full_page=True)
    finally:
        context.close()


def _visit_all(browser: Any, language: str, folder: Path, visits: list[Visit]) -> list[str]:
    """Each page at each width in a fresh context: what is wrong with it, one line each."""
    problems: list[str] = []
    for visit in visits:
        for width, viewport in WIDTHS.items():
            where = f"{language}-{width}-{visit.name}"
            context = browser.new_context(locale=language, viewport=viewport)
            try:
                page = context.new_page()
                seen: list[str] = []
                page.on("pageerror", lambda error, seen=seen: seen.append(f"script error: {error}"))
                page.on(
                    "console",
                    lambda message, seen=seen: (
                        seen.append(message.text) if "Content Security Policy" in message.text else None
                    ),
                )
                visit.arrive(page)
                page.screenshot(path=folder / f"{where}.png", full_page=True)
                seen += _page_problems(page)
                problems += [f"{where}: {problem}" for problem in seen]
            finally:
                context.close()
    return problems


def _page_problems(page: Any) -> list[str]:
    problems = []
    overflow = horizontal_overflow(page)
    if overflow > 0:
        problems.append(f"the page is {overflow} px wider than the viewport")
    problems += page.evaluate(SIDEWAYS_BOXES)
    problems += [f"navigation: {problem}" for problem in page.evaluate(NAVIGATION_PROBLEMS)]
    problems += [f"axe {finding}" for finding in accessibility_violations(page)]
    return problems


def _goto(url: str, expect: str, *, open_all: bool = False) -> Callable[[Any], None]:
    def arrive(page: Any) -> None:
        page.goto(url)
        page.wait_for_selector(expect)
        if open_all:
            page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")

    return arrive


def _submit_form(url: str, numbers: str, expect: str, *, untick: bool = False) -> Callable[[Any], None]:
    def arrive(page: Any) -> None:
        page.goto(url + "/")
        page.fill("#numbers", numbers)
        if untick:
            page.click("[data-check=none]")
        page.click("#submit")
        page.wait_for_selector(expect)

    return arrive


def _older(url: str) -> Callable[[Any], None]:
    def arrive(page: Any) -> None:
        page.goto(url + "/history")
        page.click("#older")
        page.wait_for_url("**/history?before=*")
        page.wait_for_selector("#history")

    return arrive


def _signed_in(url: str, name: str, path: str, expect: str, *, password: str = "") -> Callable[[Any], None]:
    """Sign in through the page (with a wrong password: stay on the sign-in page), then go to `path`."""

    def arrive(page: Any) -> None:
        page.goto(url + "/signin")
        page.fill("#name", name)
        page.fill("#password", password or PASSWORDS[name])
        page.click("#sign-in")
        if not password:
            page.wait_for_selector("#sign-out")
            page.goto(url + path)
        page.wait_for_selector(expect)

    return arrive


def _submitted(url: str, numbers: list[int], operations: list[str]) -> str:
    response = client.submit(url, numbers, operations, wait=0)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _history(url: str) -> dict[str, Any]:
    response = requests.get(f"{url}/api/history", timeout=client.TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def _tab_to(page: Any, selector: str, *, backwards: bool = False, presses: int = 40) -> None:
    """Press Tab (Shift+Tab backwards) until `selector` has the focus; every stop must show it."""
    for _ in range(presses):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        unseen = page.evaluate(UNSEEN_FOCUS)
        assert not unseen, unseen
        if page.evaluate("selector => document.activeElement.matches(selector)", selector):
            return
    raise AssertionError(f"{presses} presses of Tab never reached {selector}")
