"""JSON's pitfalls (docs/formats/json-pitfalls.md): the table's differences, asserted from
a real run of Python's json, orjson and Node.js, each with its control."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import load_snippet

pit = load_snippet("formats/json_pitfalls")


@pytest.fixture
def node(node_bin, monkeypatch):
    monkeypatch.setenv("NODE_BIN", node_bin)


def test_a_double_cannot_hold_two_to_the_53_plus_one():
    assert float(2**53 + 1) == 2**53  # rounded to the nearest double
    assert float(2**53 - 1) == 2**53 - 1  # the control: the largest "safe" integer survives
    assert json.loads("[9007199254740993]") == [2**53 + 1]  # Python's json keeps ints exact


def test_pythons_json_keeps_integers_exact_up_to_4300_digits():
    """The page: exact up to 4,300 digits (sys.get_int_max_str_digits(), Python 3.11+)."""
    assert json.loads("[" + "9" * 4300 + "]") == [10**4300 - 1]
    with pytest.raises(ValueError, match="4300"):
        json.loads("[" + "9" * 4301 + "]")


TABLE = {  # every row of the page's table: (json, orjson, node), and whether the values differ
    "2^53 - 1": ("[9007199254740991]", "[9007199254740991]", "[9007199254740991]", False),
    "2^53 + 1": ("[9007199254740993]", "[9007199254740993]", "[9007199254740992]", True),
    "2^64": (
        "[18446744073709551616]",
        "[1.8446744073709552e+19]",
        "[18446744073709552000]",
        True,
    ),  # fmt: skip
    "1e400": ("[Infinity]", "error", "[Infinity]", True),
    "-0.0": ("[-0.0]", "[-0.0]", "[-0]", False),  # the same negative zero, printed two ways
    "1.0": ("[1.0]", "[1.0]", "[1]", False),  # the same double: JavaScript has no int type
    "NaN": ("[NaN]", "error", "error", True),
    "Infinity": ("[Infinity]", "error", "error", True),
    "duplicate key": ('{"a":2}', '{"a":2}', '{"a":2}', False),  # all three: the last wins
    "lone surrogate": ('["\\ud800"]', "error", '["\\ud800"]', True),
    "escaped NUL": ('["\\u0000"]', '["\\u0000"]', '["\\u0000"]', False),
    "raw control char": ("error", "error", "error", False),
    "trailing comma": ("error", "error", "error", False),
    "leading zero": ("error", "error", "error", False),
    "byte order mark": ("error", "error", "error", False),
    "text after the value": ("error", "error", "error", False),
}


def test_the_table_from_a_real_run(node):
    got = pit.parse_everywhere(pit.CORPUS)
    assert list(got) == list(TABLE)
    for case, (*cells, differ) in TABLE.items():
        assert [got[case][p] for p in ("json", "orjson", "node")] == cells, case
        assert pit.same_values(cells) is not differ, case


def test_same_values_compares_values_not_text():
    assert pit.same_values(["[1.0]", "[1]"])  # one double
    assert pit.same_values(["[-0.0]", "[-0]"])
    assert not pit.same_values(["[-0.0]", "[0]"])  # the sign of zero counts
    assert not pit.same_values(["[9007199254740993]", "[9007199254740992]"])  # exact, not float
    assert not pit.same_values(["[1]", "error"])


def test_break_it_an_id_sent_as_a_string_survives_javascript(node):
    got = pit.parse_everywhere({"number": '{"id": 9007199254740993}',
                                "string": '{"id": "9007199254740993"}'})  # fmt: skip
    assert got["number"]["node"] == '{"id":9007199254740992}'
    assert got["string"]["node"] == '{"id":"9007199254740993"}'


def test_writers_nan_and_surrogates():
    out = pit.writers()
    assert out["json.dumps(nan)"] == "NaN"  # not JSON: RFC 8259 §6 has no NaN
    assert out["json.dumps(nan, allow_nan=False)"].startswith("ValueError")
    assert out["orjson.dumps(nan)"] == "null"  # silently a different value
    assert out["json.dumps('\\ud800')"] == '"\\ud800"'
    assert out["orjson.dumps('\\ud800')"].startswith("TypeError")
    assert out["orjson.dumps(naive datetime)"] == '"2026-03-29T01:30:00"'  # no offset
    assert out["orjson.dumps(aware datetime)"] == '"2026-03-29T01:30:00+00:00"'


@pytest.mark.parametrize("case", ["duplicate key", "NaN", "1e400", "lone surrogate"])
def test_strict_loads_refuses_what_json_accepts(case):
    json.loads(pit.CORPUS[case])  # the standard parser accepts it ...
    with pytest.raises(ValueError):
        pit.strict_loads(pit.CORPUS[case])  # ... the strict one does not


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Expecting value"),  # empty
        ('{"id": 1', "Expecting ','"),  # cut off
        ("[" * 100_000, "nested more than 512 deep"),  # json.loads: RecursionError
        ("1" * 5_000, "4300 digits"),  # Python's int limit (sys.set_int_max_str_digits)
    ],
    ids=["empty", "truncated", "nested 100,000 deep", "5,000 digits"],
)
def test_strict_loads_answers_malformed_and_oversized_input_with_a_value_error(text, message):
    with pytest.raises(ValueError, match=message):
        pit.strict_loads(text)


def test_control_deep_nesting_is_a_recursion_error_in_plain_json():
    """What strict_loads guards against: the standard parser's own limit is the
    interpreter's recursion limit (994 levels on CPython 3.11 here, less when called from
    deeper in the stack), and its answer is not a ValueError."""
    balanced = "[" * 2000 + "]" * 2000
    with pytest.raises(RecursionError):
        json.loads(balanced)
    if sys.version_info[:2] == (3, 11) and sys.getrecursionlimit() == 1000:
        with pytest.raises(RecursionError):  # the page: under 1,000 levels on CPython 3.11
            json.loads("[" * 1000 + "]" * 1000)
    with pytest.raises(ValueError, match="nested more than 512 deep"):
        pit.strict_loads(balanced)


def test_strict_loads_has_an_explicit_depth_limit_of_512():
    """RFC 8259 §9 lets a parser limit nesting; ours is MAX_DEPTH, stated, not an accident
    of the stack: 512 levels parse, 513 are refused before json.loads runs."""
    assert pit.MAX_DEPTH == 512
    at_limit = "[" * 512 + "]" * 512  # the control: as deep as allowed
    assert pit.strict_loads(at_limit) == json.loads(at_limit)
    over = "[" * 256 + '{"a":' * 257 + "1" + "}" * 257 + "]" * 256  # objects count too
    with pytest.raises(ValueError, match="nested more than 512 deep"):
        pit.strict_loads(over)
    brackets_in_strings = json.dumps({"s": "[" * 2000, "t": '\\"[{' * 1000})
    assert pit.strict_loads(brackets_in_strings) == json.loads(brackets_in_strings)


def test_control_strict_loads_accepts_ordinary_json():
    assert pit.strict_loads('{"a": [1, 2.5, "é", null]}') == {"a": [1, 2.5, "é", None]}
    assert pit.strict_loads("[1e308, -1e308]") == [1e308, -1e308]  # large but finite


def test_a_date_time_without_offset_is_local_time_in_javascript(node):
    lines = [line.split() for line in pit.node(pit.NODE_DATES).splitlines()]
    by = {(tz, text): iso for tz, text, iso in lines}
    assert by["UTC", "2026-03-29T01:30:00"] != by["America/New_York", "2026-03-29T01:30:00"]
    # the controls: with an offset, or a date alone (read as UTC), the zone does not matter
    assert by["UTC", "2026-03-29T01:30:00Z"] == by["America/New_York", "2026-03-29T01:30:00Z"]
    assert by["UTC", "2026-03-29"] == by["America/New_York", "2026-03-29"]
