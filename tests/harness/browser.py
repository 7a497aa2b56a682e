"""Real Chromium for the tests that drive the page (Playwright, Debian's browser; never downloaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Headless Chromium as installed from Debian; its calls home are switched off (a closed network).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch_chromium(playwright: Any, *extra_args: str) -> Any:
    return playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[*CHROMIUM_ARGS, *extra_args])


# axe-core, installed by tests/compose/prepare (npm, pinned there).
AXE_SCRIPT = (
    Path(__file__).resolve().parents[2] / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
)
# What a page may not have: axe's two highest impacts.
BLOCKING_IMPACTS = ("serious", "critical")
PHONE_VIEWPORT = {"width": 390, "height": 844}


def accessibility_violations(page: Any, context: str | None = None) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now, one line each; only inside
    the element `context` (a CSS selector) names, if given."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol, which the page's Content-Security-Policy (no inline
        # scripts) does not govern; a <script> tag would be refused, as it should be.
        page.evaluate(f"() => {{ {AXE_SCRIPT.read_text()}\n }}")
    found = page.evaluate("async (context) => (await axe.run(context || document)).violations", context)
    return [
        f"{violation['impact']}: {violation['id']} ({violation['help']}) at "
        + ", ".join(" ".join(node["target"]) for node in violation["nodes"][:5])
        for violation in found
        if violation["impact"] in BLOCKING_IMPACTS
    ]


def horizontal_overflow(page: Any, context: str | None = None) -> int:
    """How many CSS pixels the page is wider than its viewport (0: no horizontal scrolling); with
    `context` (a CSS selector), how far that element or anything in it reaches past the viewport."""
    if context is None:
        return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    return page.evaluate(
        """(selector) => {
            const root = document.querySelector(selector);
            const rights = [root, ...root.querySelectorAll('*')].map(e => e.getBoundingClientRect().right);
            return Math.max(0, Math.ceil(Math.max(...rights) - document.documentElement.clientWidth));
        }""",
        context,
    )
