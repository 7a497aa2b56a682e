"""French and English in real Chromium: the browser's language chooses, the switch overrides and
sticks, numbers and times are written the language's way; the JSON API stays English."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import requests

NARROW_NO_BREAK_SPACE = "\u202f"  # French groups digits with it (CLDR)
VIEWER_ZONE = "Pacific/Auckland"


def test_the_page_speaks_the_browsers_language_and_the_switch_sticks(
    stack, run, chromium, page_screenshots
) -> None:
    run.worker()
    run.logger()
    front = run.frontend()
    # Far from UTC, so that a time left in UTC would show.
    context = chromium.new_context(locale="fr-FR", timezone_id=VIEWER_ZONE)
    try:
        page = context.new_page()
        page.goto(front.url + "/")
        assert page.get_attribute("html", "lang") == "fr"
        assert page.inner_text("h1") == "Calculer sur une liste d’entiers"
        assert "jusqu’à " + "1 000 000".replace(" ", NARROW_NO_BREAK_SPACE) in page.inner_text(
            "label[for=numbers]"
        )
        assert page.inner_text("label:has(input[value=median])").strip() == "Médiane"

        # An error in French, with the typed input kept.
        page.fill("#numbers", "1 deux 3")
        page.click("#submit")
        assert page.inner_text("#numbers-error") == (
            "'deux' (nombre 2) n’est pas un entier ; utilisez des nombres entiers comme 42 ou -7"
        )

        # A result: labels, counts and times in French; the exact results as they are.
        page.fill("#numbers", " ".join(str(n) for n in range(1, 1201)))
        page.click("[data-check=none]")
        page.check("input[value=sum]")
        page.check("input[value=mean]")
        page.click("#submit")
        page.wait_for_selector("#result-sum")
        assert page.inner_text("#result-sum th") == "Somme"
        assert page.inner_text("#result-sum td") == "720600"
        assert page.inner_text("#result-mean td") == "600.5"
        assert f"1{NARROW_NO_BREAK_SPACE}200 entiers" in page.inner_text("h2:has(.hint)")
        assert page.inner_text("#timing-total").endswith(" ms")
        assert "il y a" in page.inner_text("#timing-submitted") or "maintenant" in page.inner_text(
            "#timing-submitted"
        )
        # On hover, the full time in the viewer's own zone.
        submitted = datetime.fromisoformat(page.get_attribute("#timing-submitted time", "datetime"))
        there = submitted.astimezone(ZoneInfo(VIEWER_ZONE))
        assert f"{there:%H:%M}" in page.get_attribute("#timing-submitted time", "title")
        page.screenshot(path=page_screenshots / "fr-desktop-result-language.png", full_page=True)

        # The switch: English, and it sticks for the next pages although the browser still asks French.
        page.click("#languages a[hreflang=en]")
        page.wait_for_selector("html[lang=en]")
        assert page.inner_text("#result-sum th") == "Sum", "back on the same page, in English"
        page.click("nav >> text=History")
        assert page.inner_text("h1") == "History"
        page.click("#languages a[hreflang=fr]")
        page.wait_for_selector("html[lang=fr]")
        assert page.inner_text("h1") == "Historique"
    finally:
        context.close()

    # The API's messages are for programs: English whatever the language asked.
    answer = requests.post(
        front.url + "/api/requests",
        json={"numbers": [1, "deux"]},
        headers={"Accept-Language": "fr-FR,fr;q=0.9"},
        timeout=30,
    )
    assert answer.status_code == 400
    assert (
        answer.json()["error"]["message"]
        == "'deux' (number 2) is not an integer; use whole numbers like 42 or -7"
    )


def test_the_switch_goes_back_only_to_a_page_of_this_site(stack, run) -> None:
    front = run.frontend()
    for target in (
        "https://elsewhere.example/",
        "//elsewhere.example/",
        "/\\elsewhere.example",
        "/\t/elsewhere.example",  # browsers drop the tab: //elsewhere.example
        "/\n/elsewhere.example",
    ):
        answer = requests.get(
            f"{front.url}/language/fr", params={"next": target}, allow_redirects=False, timeout=30
        )
        assert answer.status_code == 303
        assert answer.headers["Location"] == "/", target
        assert "qcompute_language=fr" in answer.headers["Set-Cookie"]
