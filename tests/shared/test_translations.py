"""The page's French is complete and current: every sentence the code and templates mark has a
checked translation with the same placeholders, and the compiled .mo the frontend reads matches its .po."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from frontend.i18n import LANGUAGES
from harness.services import ROOT

TRANSLATIONS = ROOT / "services/frontend/translations"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
TRANSLATED = sorted(set(LANGUAGES) - {"en"})


@pytest.fixture(scope="module")
def marked(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sentence marked for translation today, as scripts/translations collects them."""
    template = tmp_path_factory.mktemp("pot") / "messages.pot"
    pybabel = Path(sys.executable).with_name("pybabel")
    subprocess.run(
        [pybabel, "-q", "extract", "-F", "services/frontend/babel.cfg", "-o", template, "."],
        cwd=ROOT,
        check=True,
    )
    with template.open("rb") as file:
        return {_forms(message.id)[0] for message in read_po(file) if message.id}


def _forms(text: str | tuple | list) -> tuple[str, ...]:
    """A sentence's forms: one, or one per plural form."""
    return (text,) if isinstance(text, str) else tuple(text)


def _catalog(language: str):
    with (TRANSLATIONS / language / "LC_MESSAGES/messages.po").open("rb") as file:
        return read_po(file)


def test_the_sentences_are_found(marked: set[str]) -> None:
    # A broken extraction would make every other check here pass vacuously.
    assert {"Sum", "enter at least one integer", "History", "There is no request with this id."} <= marked


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_marked_sentence_has_a_checked_translation(language: str, marked: set[str]) -> None:
    catalog = _catalog(language)
    missing = sorted(marked - {_forms(message.id)[0] for message in catalog if message.id})
    assert not missing, f"run scripts/translations and translate: {missing}"
    untranslated = [message.id for message in catalog if message.id and not all(_forms(message.string))]
    fuzzy = [message.id for message in catalog if message.id and message.fuzzy]
    assert not untranslated, f"no {language} translation yet: {untranslated}"
    assert not fuzzy, f"{language} translations marked fuzzy (check, then remove the flag): {fuzzy}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_the_placeholders(language: str) -> None:
    for message in _catalog(language):
        if message.id and message.string:
            expected = set(PLACEHOLDER.findall(" ".join(_forms(message.id))))
            for form in _forms(message.string):
                assert set(PLACEHOLDER.findall(form)) == expected, message.id


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_compiled_catalog_is_the_current_one(language: str) -> None:
    with (TRANSLATIONS / language / "LC_MESSAGES/messages.mo").open("rb") as file:
        compiled = {_forms(message.id): _forms(message.string) for message in read_mo(file) if message.id}
    written = {_forms(message.id): _forms(message.string) for message in _catalog(language) if message.id}
    assert compiled == written, "the .mo is older than the .po: run scripts/translations"
