"""Input checks: what is accepted, and the exact error for what is not."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qcompute.operations import OPERATIONS
from qcompute.settings import Limits
from qcompute.validation import (
    LONGEST_CONVERTED,
    InputError,
    IntegerLiteral,
    check_fields,
    has_long_digit_run,
    loads_untrusted,
    parse_numbers,
    parse_numbers_text,
    parse_operations,
    read_integer,
)

LIMITS = Limits(max_numbers=5, max_abs_number=1000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 2 3", [1, 2, 3]),
        ("1,2,3", [1, 2, 3]),
        (" 1,\n 2\t3 ,, ", [1, 2, 3]),
        ("-7 +8 007", [-7, 8, 7]),
        ("1000 -1000", [1000, -1000]),
    ],
)
def test_form_text_is_split_on_spaces_commas_and_new_lines(text: str, expected: list[int]) -> None:
    assert parse_numbers_text(text, LIMITS) == expected


@pytest.mark.parametrize(
    ("text", "code", "fragment"),
    [
        ("", "empty", "at least one"),
        ("  ,\n ", "empty", "at least one"),
        ("1 2.5", "invalid_number", "'2.5' (number 2) is not an integer"),
        ("1e3", "invalid_number", "'1e3' (number 1)"),
        ("0x10", "invalid_number", "'0x10'"),
        ("١٢٣", "invalid_number", "not an integer"),  # Arabic-Indic digits, which int() accepts
        ("1_000", "invalid_number", "'1_000'"),
        ("--1", "invalid_number", "'--1'"),
        ("1001", "number_too_large", "between -1,000 and 1,000"),
        ("-1001", "number_too_large", "(number 1) is too large"),
        ("9" * 5000, "number_too_large", "..."),
        ("1 2 3 4 5 6", "too_many_numbers", "6 numbers given; at most 5"),
    ],
)
def test_bad_form_text_names_the_problem(text: str, code: str, fragment: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_numbers_text(text, LIMITS)
    assert caught.value.code == code
    assert caught.value.field == "numbers"
    assert fragment in caught.value.message


def test_json_numbers_may_be_integers_or_decimal_strings() -> None:
    assert parse_numbers([1, "-2", "+3", 1000], LIMITS) == [1, -2, 3, 1000]


@pytest.mark.parametrize(
    ("values", "code", "fragment"),
    [
        ("1 2 3", "invalid_field", "must be a list"),
        ({"a": 1}, "invalid_field", "must be a list"),
        ([], "empty", "at least one"),
        ([1.0], "invalid_number", "not a whole number"),
        ([1.5], "invalid_number", "'1.5' (number 1) is not a whole number"),
        ([True], "invalid_number", "is a boolean"),
        ([None], "invalid_number", "is null"),
        ([[1]], "invalid_number", "is a list"),
        (["1.0"], "invalid_number", "is not an integer"),
        ([" 1"], "invalid_number", "is not an integer"),
        (["1e3"], "invalid_number", "is not an integer"),
        ([1001], "number_too_large", "(number 1) is too large"),
        (["-1001"], "number_too_large", "too large"),
        ([1, 2, 3, 4, 5, 6], "too_many_numbers", "at most 5"),
    ],
)
def test_bad_json_numbers_name_the_problem(values: object, code: str, fragment: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_numbers(values, LIMITS)
    assert (caught.value.code, caught.value.field) == (code, "numbers")
    assert fragment in caught.value.message


def test_huge_json_literals_are_refused_without_converting_them() -> None:
    document = json.loads('{"numbers": [' + "9" * 200_000 + "]}", parse_int=read_integer)
    with pytest.raises(InputError) as caught:
        parse_numbers(document["numbers"], Limits())
    assert caught.value.code == "number_too_large"
    assert "9999999999999999999" in caught.value.message
    assert len(caught.value.message) < 200


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32-le", None])
def test_a_long_literal_in_any_encoding_json_reads_stays_text(encoding: str | None) -> None:
    text = '{"numbers": [' + "9" * 50 + "]}"
    document = loads_untrusted(text.encode(encoding) if encoding else text)
    assert type(document["numbers"][0]) is IntegerLiteral


def test_untrusted_json_keeps_long_literals_as_text_without_converting_them() -> None:
    document = loads_untrusted(('{"numbers": [1, ' + "9" * 1_000_000 + "]}").encode())
    assert type(document["numbers"][0]) is int
    assert type(document["numbers"][1]) is IntegerLiteral  # never converted: that would take seconds
    assert document["numbers"] == [1, "9" * 1_000_000]


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(
        st.integers(min_value=-(10**45), max_value=10**45)
        | st.floats(allow_nan=False)
        | st.text(max_size=45),
        max_size=20,
    ),
    padding=st.integers(min_value=0, max_value=60),
    # json.loads reads all of these from bytes; in UTF-16 and UTF-32 digits are not adjacent bytes.
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32", "utf-32-be"]),
)
def test_untrusted_json_reads_as_the_integer_hook_does(
    values: list[object], padding: int, encoding: str
) -> None:
    body = (" " * padding + json.dumps({"numbers": values})).encode(encoding)
    expected = json.loads(body, parse_int=read_integer)
    read = loads_untrusted(body)
    assert read == expected
    assert [type(value) for value in read["numbers"]] == [type(value) for value in expected["numbers"]]


@pytest.mark.parametrize(
    "start", [0, (1 << 20) - LONGEST_CONVERTED - 1, (1 << 20) - 20, (1 << 20) - 1, 3 << 20]
)
def test_a_long_run_of_digits_is_found_wherever_it_lies(start: int) -> None:
    body = bytearray(b" " * ((4 << 20) + 100))
    body[start : start + LONGEST_CONVERTED] = b"7" * LONGEST_CONVERTED
    assert has_long_digit_run(bytes(body))
    body[start + LONGEST_CONVERTED // 2] = ord(",")
    assert not has_long_digit_run(bytes(body))


def test_a_valid_list_is_taken_as_it_is_and_a_bad_one_still_names_its_first_bad_value() -> None:
    numbers = list(range(-1000, 1001, 7))
    assert parse_numbers(numbers, Limits(max_abs_number=1000)) is numbers
    for bad, code, position in (
        ([1, 2, True], "invalid_number", "3"),
        ([1, 1001, 2.5], "number_too_large", "2"),
        ([-1001, 1], "number_too_large", "1"),
    ):
        with pytest.raises(InputError) as caught:
            parse_numbers(bad, Limits(max_abs_number=1000))
        assert caught.value.code == code
        assert f"number {position}" in caught.value.message


def test_operations_default_to_all_in_defined_order() -> None:
    assert parse_operations(None) == list(OPERATIONS)
    assert parse_operations(["mean", "sum"]) == ["mean", "sum"]


@pytest.mark.parametrize(
    ("values", "code", "fragment"),
    [
        ([], "no_operations", "choose at least one"),
        (["sum", "average"], "unknown_operation", "unknown operation 'average'; choose from sum, product"),
        (["sum", "mean", "sum"], "duplicate_operation", "'sum' is listed more than once"),
        ("sum", "invalid_field", "must be a list"),
        ([1], "invalid_field", "must be a list of operation names"),
        (["SUM"], "unknown_operation", "'SUM'"),
    ],
)
def test_bad_operations_name_the_problem(values: object, code: str, fragment: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_operations(values)
    assert (caught.value.code, caught.value.field) == (code, "operations")
    assert fragment in caught.value.message


def test_many_duplicate_operations_are_refused_quickly() -> None:
    with pytest.raises(InputError, match="more than once"):
        parse_operations(["sum"] * 200_000)


@pytest.mark.parametrize(
    ("document", "code", "field"),
    [
        ([], "invalid_body", "body"),
        ("x", "invalid_body", "body"),
        ({}, "missing_field", "numbers"),
        ({"numbers": [1], "extra": 1}, "unknown_field", "extra"),
    ],
)
def test_fields_are_checked(document: object, code: str, field: str) -> None:
    with pytest.raises(InputError) as caught:
        check_fields(document, allowed=("numbers", "operations"), required=("numbers",))
    assert (caught.value.code, caught.value.field) == (code, field)
