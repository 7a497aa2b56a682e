"""Page tests in real Chromium against the services as processes on the embedded emulator. They run in
the --compose stage, whose tests/compose/prepare installs Chromium and axe-core."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.browser import launch_chromium

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.browser)


# Per module, not per session: Playwright's sync API keeps an event loop running in this thread while
# it is open, and other tests (tests/compose) start their own.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page_screenshots() -> Path:
    """Where the page tests leave their screenshots (evidence, not compared)."""
    folder = ARTIFACTS / "screenshots" / "pages"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
