"""Check what a person or a queue gives us, and say clearly what is wrong.

The frontend checks form and API input with these functions; the worker checks every message again
with the same ones (a queue is never trusted).
"""

from __future__ import annotations

import json
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


# A literal of up to this many characters is converted to an int at once (cheaply); longer ones wait.
LONGEST_CONVERTED = 40


class IntegerLiteral(str):
    """A long integer as JSON wrote it, kept as text until validation has judged its length."""


def read_integer(text: str) -> int | IntegerLiteral:
    """A `json.loads(parse_int=...)` hook: convert short literals, keep long ones as text.

    Converting a very long digit string to an int takes time quadratic in its length, so untrusted
    JSON never gets that far; validation reports such a literal as too large.
    """
    return int(text) if len(text) <= LONGEST_CONVERTED else IntegerLiteral(text)


# read_integer costs a Python call per integer: 139 ms for a million, against 63 ms for json.loads
# alone. Only a body with LONGEST_CONVERTED digits in a row can hold a literal it keeps as text (a sign
# makes one more character), and a scan finds such a run in 18 ms for 13 MB: each byte becomes "1"
# (an ASCII digit) or "0", then a plain find.
_DIGIT_OR_NOT = bytes(49 if 48 <= byte <= 57 else 48 for byte in range(256))
_LONG_DIGIT_RUN = b"1" * LONGEST_CONVERTED
_SCAN_CHUNK = 1 << 20


def has_long_digit_run(body: bytes) -> bool:
    """Whether `body` holds LONGEST_CONVERTED digits in a row (read in 1 MiB slices that overlap by
    a run's length, so the scan never copies a whole large body)."""
    view = memoryview(body)
    step = _SCAN_CHUNK - len(_LONG_DIGIT_RUN)
    return any(
        _LONG_DIGIT_RUN in view[start : start + _SCAN_CHUNK].tobytes().translate(_DIGIT_OR_NOT)
        for start in range(0, max(len(view), 1), step)
    )


def loads_untrusted(body: bytes | str) -> Any:
    """JSON from outside, never converting a long integer literal (see read_integer); raises
    ValueError or RecursionError for what is not JSON. Equal to json.loads(body,
    parse_int=read_integer), quicker for UTF-8 bytes with no long literal."""
    # json.loads also reads UTF-16 and UTF-32 bytes, whose digits are not adjacent bytes: a scan of
    # them would find no run, so they (and text) always take the hook.
    if (
        isinstance(body, bytes)
        and json.detect_encoding(body) in ("utf-8", "utf-8-sig")
        and not has_long_digit_run(body)
    ):
        return json.loads(body)
    return json.loads(body, parse_int=read_integer)


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
    # The usual case, judged at C speed (35 ms for a million, against 160 ms one by one below): plain
    # ints (not bools, whose type differs) within the limit. Anything else is read one by one, so
    # that the error names the first bad value and its position.
    limit = limits.max_abs_number
    if set(map(type, values)) == {int} and -limit <= min(values) and max(values) <= limit:
        return values  # the caller's list itself: a copy would be 8 MB more for a million
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
