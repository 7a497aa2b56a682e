"""Check what a person or a queue gives us, and say clearly what is wrong.

The frontend checks form and API input with these functions; the worker checks every message again
with the same ones (a queue is never trusted).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from qcompute.messages import N_, Explained
from qcompute.operations import OPERATIONS
from qcompute.settings import Limits

# ASCII only: Python's int() also takes other scripts' digits (e.g. Arabic-Indic), which we refuse.
INTEGER_TOKEN = re.compile(r"[+-]?[0-9]+")
# The form accepts integers separated by spaces, commas or new lines.
FORM_SEPARATORS = re.compile(r"[\s,]+")


class InputError(Explained):
    """Bad input, with a machine-readable code, a sentence for people (see qcompute.messages) and the
    field it concerns."""

    def __init__(self, code: str, template: str, field: str, **params: Any) -> None:
        super().__init__(template, **params)
        self.code = code
        self.field = field

    @property
    def message(self) -> str:
        return str(self)

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "field": self.field}


class IntegerLiteral(str):
    """A long integer as JSON wrote it, kept as text until validation has judged its length."""


def read_integer(text: str) -> int | IntegerLiteral:
    """A `json.loads(parse_int=...)` hook: convert short literals, keep long ones as text.

    Converting a very long digit string to an int takes time quadratic in its length, so untrusted
    JSON never gets that far; validation reports such a literal as too large.
    """
    return int(text) if len(text) <= 40 else IntegerLiteral(text)


def _shown(token: str) -> str:
    return repr(token if len(token) <= 24 else token[:20] + "...")


def _integer_from_text(token: str, position: int, limits: Limits) -> int:
    if not INTEGER_TOKEN.fullmatch(token):
        raise InputError(
            "invalid_number",
            N_("%(token)s (number %(position)s) is not an integer; use whole numbers like 42 or -7"),
            "numbers",
            token=_shown(token),
            position=position,
        )
    digits = token.lstrip("+-").lstrip("0")
    if len(digits) > len(str(limits.max_abs_number)):
        raise _too_large(token, position, limits)
    return _checked(int(token), token, position, limits)


def _checked(value: int, token: str, position: int, limits: Limits) -> int:
    if abs(value) > limits.max_abs_number:
        raise _too_large(token, position, limits)
    return value


def _too_large(token: str, position: int, limits: Limits) -> InputError:
    return InputError(
        "number_too_large",
        N_("%(token)s (number %(position)s) is too large; numbers must be between -%(limit)s and %(limit)s"),
        "numbers",
        token=_shown(token),
        position=position,
        limit=limits.max_abs_number,
    )


def _check_count(count: int, limits: Limits) -> None:
    if count == 0:
        raise InputError("empty", N_("enter at least one integer"), "numbers")
    if count > limits.max_numbers:
        raise InputError(
            "too_many_numbers",
            N_("%(count)s numbers given; at most %(limit)s are allowed"),
            "numbers",
            count=count,
            limit=limits.max_numbers,
        )


def parse_numbers_text(text: str, limits: Limits) -> list[int]:
    """Integers typed into the form, separated by spaces, commas or new lines."""
    tokens = [token for token in FORM_SEPARATORS.split(text) if token]
    _check_count(len(tokens), limits)
    return [_integer_from_text(token, position, limits) for position, token in enumerate(tokens, 1)]


def parse_numbers(values: object, limits: Limits) -> list[int]:
    """Integers from JSON: numbers, or decimal strings for clients that cannot send big numbers."""
    if not isinstance(values, list):
        raise InputError("invalid_field", N_("numbers must be a list of integers"), "numbers")
    _check_count(len(values), limits)
    numbers = []
    for position, value in enumerate(values, 1):
        if isinstance(value, str):  # decimal strings and IntegerLiteral alike
            numbers.append(_integer_from_text(value, position, limits))
        elif isinstance(value, int) and not isinstance(value, bool):
            numbers.append(_checked(value, str(value), position, limits))
        else:
            template = {
                bool: N_('%(token)s (number %(position)s) is a boolean; give integers like 42 or "42"'),
                float: N_(
                    '%(token)s (number %(position)s) is not a whole number; give integers like 42 or "42"'
                ),
                type(None): N_('%(token)s (number %(position)s) is null; give integers like 42 or "42"'),
            }.get(
                type(value),
                N_('%(token)s (number %(position)s) is a %(type)s; give integers like 42 or "42"'),
            )
            raise InputError(
                "invalid_number",
                template,
                "numbers",
                token=_shown(str(value)),
                position=position,
                type=type(value).__name__,
            )
    return numbers


def parse_operations(values: object) -> list[str]:
    """Operation names; `None` (not given) means all of them, in their defined order."""
    if values is None:
        return list(OPERATIONS)
    if not isinstance(values, list) or not all(isinstance(name, str) for name in values):
        raise InputError("invalid_field", N_("operations must be a list of operation names"), "operations")
    if not values:
        raise InputError("no_operations", N_("choose at least one operation"), "operations")
    unknown = [name for name in values if name not in OPERATIONS]
    if unknown:
        raise InputError(
            "unknown_operation",
            N_("unknown operation %(name)s; choose from %(names)s"),
            "operations",
            name=_shown(unknown[0]),
            names=", ".join(OPERATIONS),
        )
    duplicates = sorted(name for name, count in Counter(values).items() if count > 1)
    if duplicates:
        raise InputError(
            "duplicate_operation",
            N_("operation %(name)s is listed more than once"),
            "operations",
            name=repr(duplicates[0]),
        )
    return list(values)


def check_fields(document: object, allowed: Iterable[str], required: Iterable[str]) -> dict:
    """A JSON object holding only the allowed fields and every required one."""
    if not isinstance(document, dict):
        raise InputError("invalid_body", N_("the body must be a JSON object"), "body")
    allowed = set(allowed)
    extra = sorted(set(document) - allowed)
    if extra:
        raise InputError(
            "unknown_field",
            N_("unknown field %(name)s; allowed fields are %(names)s"),
            extra[0],
            name=_shown(extra[0]),
            names=", ".join(sorted(allowed)),
        )
    for name in required:
        if name not in document:
            raise InputError("missing_field", N_("%(name)s is required"), name, name=name)
    return document
