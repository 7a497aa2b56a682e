"""A reply that is not back within the wait: the API answers 202 and the page refreshes until done."""

from __future__ import annotations

import re

import pytest
import requests

from harness import client

pytestmark = pytest.mark.integration


def test_pending_then_done_when_the_worker_starts_late(stack, run) -> None:
    logger = run.logger()
    front = run.frontend(REPLY_WAIT_SECONDS=1)

    response = client.submit(front.url, [6, 7], ["product"])
    assert response.status_code == 202
    request_id = response.json()["id"]
    assert response.json() == {"id": request_id, "status": "pending"}
    assert response.headers["Location"] == f"/api/requests/{request_id}"
    assert client.result(front.url, request_id).status_code == 202

    # The form waits as long, then sends the browser to a page that refreshes itself.
    session = requests.Session()
    form = client.submit_form(session, front.url, "2 3 4", ["sum"])
    assert form.status_code == 303
    page_url = front.url + form.headers["Location"]
    page = session.get(page_url, timeout=30)
    assert page.status_code == 202
    assert '<meta http-equiv="refresh" content="2">' in page.text

    run.worker()
    done = client.until_done(front.url, request_id)
    assert (done["status"], done["results"]) == ("done", {"product": 42})

    # The page's input comes from the log record, which follows the reply by a moment (until then
    # the page says so: tests/frontend covers that case).
    logger.wait_for_event("logged", count=2)
    html = client.result_page(session, front.url, form)
    assert re.search(r'id="result-sum">.*?<td class="value">9</td>', html, re.S)
    assert "http-equiv" not in html
    assert "2, 3, 4" in html
