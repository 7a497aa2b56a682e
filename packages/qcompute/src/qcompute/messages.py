"""Sentences for people that the page can show in another language.

An error keeps its English template and the values that fill it: `str()` of the error is the English
sentence (logs and the JSON API, whose clients are programs), while the frontend looks the template up
in its translation catalogue and fills it there (frontend/i18n.py). `N_` marks a template for
`pybabel extract`, which collects the catalogue's sentences from the code.
"""

from __future__ import annotations

from typing import Any


def N_(template: str) -> str:  # the name gettext tools look for
    """Mark an English template for translation; it is translated where it is shown."""
    return template


def english(template: str, params: dict[str, Any]) -> str:
    """The sentence in English, whole numbers grouped by thousands (1,000,000)."""
    if not params:
        return template
    return template % {
        name: f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
        for name, value in params.items()
    }


class Explained(Exception):
    """An error with a sentence for people: an English template (marked with N_) and its values."""

    def __init__(self, template: str, **params: Any) -> None:
        self.template = template
        self.params = params
        super().__init__(english(template, params))


class Sentence(str):
    """An English sentence (a plain `str` to JSON and logs) that keeps its template and values, so a
    page can say it in another language, as it does an `Explained` error's."""

    template: str
    params: dict[str, Any]

    def __new__(cls, template: str, **params: Any) -> Sentence:
        sentence = super().__new__(cls, english(template, params))
        sentence.template, sentence.params = template, params
        return sentence
