"""?integers=string: results and numbers as decimal strings, exact in any client."""

from __future__ import annotations

import pytest

from harness import client

pytestmark = pytest.mark.integration


def test_integers_as_decimal_strings_stay_exact_for_any_client(pipeline) -> None:
    big = 2**59 + 1  # beyond 2**53: a JavaScript number would round it
    response = client.submit(pipeline.url, [big, 3], ["sum", "sorted", "mean", "mode"], integers="string")
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["results"] == {
        "sum": str(big + 3),
        "sorted": ["3", str(big)],
        "mean": str((big + 3) // 2),
        "mode": ["3", str(big)],
    }
    assert document["count"] == 2  # only the numbers and results turn into text
    # The other frontend finds it in the log (waiting until the logger has written it).
    other = pipeline.frontends[1].url
    again = client.result(other, document["id"], wait=30, numbers=1, integers="string").json()
    assert again["numbers"] == [str(big), "3"]
    assert again["results"] == document["results"]
    plain = client.result(pipeline.url, document["id"]).json()
    assert plain["results"]["sum"] == big + 3

    # A float stays a number: it is not an integer.
    halves = client.submit(pipeline.url, [1, 2], ["mean"], integers="string").json()
    assert halves["results"] == {"mean": 1.5}

    refused = client.submit(pipeline.url, [1], integers="text")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_integers"
    assert client.result(pipeline.url, document["id"], integers="text").status_code == 400


def test_chart_results_are_exact_objects_and_their_integers_strings_on_request(pipeline) -> None:
    big = 2**59 + 1  # beyond 2**53, and far from the rest: an outlier
    numbers = [big, 1, 2, 3, 4, 5, 6, 7]
    names = ["histogram", "box_plot", "median"]
    document = client.compute(pipeline.url, numbers, names)
    histogram, box = document["results"]["histogram"], document["results"]["box_plot"]
    assert sum(histogram["counts"]) == 8
    assert histogram["edges"][0] == 0
    assert histogram["edges"][-1] > big, "an exact integer edge past the maximum"
    assert box == {
        "q1": 2.75,
        "median": 4.5,
        "q3": 6.25,
        "whisker_low": 1,
        "whisker_high": 7,
        "outliers_low": 0,
        "outliers_high": 1,
        "extremes_low": [],
        "extremes_high": [big],
    }
    assert box["median"] == document["results"]["median"]

    text = client.result(pipeline.url, document["id"], integers="string").json()["results"]
    assert text["histogram"] == {
        "edges": [str(edge) for edge in histogram["edges"]],
        "counts": [str(count) for count in histogram["counts"]],
    }
    assert text["box_plot"] == {
        **box,
        "whisker_low": "1",
        "whisker_high": "7",
        "outliers_low": "0",
        "outliers_high": "1",
        "extremes_high": [str(big)],
    }, "every integer inside the objects as a string; the quartiles, not integers, stay numbers"
