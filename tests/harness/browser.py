"""Real Chromium for the tests that drive the page (Playwright, Debian's browser; never downloaded)."""

from __future__ import annotations

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
