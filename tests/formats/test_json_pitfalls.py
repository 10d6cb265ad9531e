"""JSON's pitfalls (docs/formats/json-pitfalls.md): the table's differences, asserted from
a real run of Python's json, orjson and Node.js, each with its control."""

from __future__ import annotations

import json

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


def test_the_table_from_a_real_run(node):
    got = pit.parse_everywhere(pit.CORPUS)
    assert got["2^53 + 1"] == {
        "json": "[9007199254740993]",
        "orjson": "[9007199254740993]",
        "node": "[9007199254740992]",
    }
    assert got["2^53 - 1"]["node"] == "[9007199254740991]"  # control: below 2^53 survives
    assert got["2^64"] == {
        "json": "[18446744073709551616]",
        "orjson": "[1.8446744073709552e+19]",  # beyond 64 bits orjson falls back to a double
        "node": "[18446744073709552000]",
    }
    assert got["1e400"] == {"json": "[Infinity]", "orjson": "error", "node": "[Infinity]"}
    assert got["NaN"] == {"json": "[NaN]", "orjson": "error", "node": "error"}
    assert got["lone surrogate"] == {"json": '["\\ud800"]', "orjson": "error",
                                     "node": '["\\ud800"]'}  # fmt: skip
    assert set(got["duplicate key"].values()) == {'{"a":2}'}  # all three: the last one wins
    for case in ("raw control char", "trailing comma", "leading zero", "byte order mark",
                 "text after the value"):  # fmt: skip
        assert set(got[case].values()) == {"error"}, case


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


@pytest.mark.parametrize("case", ["duplicate key", "NaN", "lone surrogate"])
def test_strict_loads_refuses_what_json_accepts(case):
    json.loads(pit.CORPUS[case])  # the standard parser accepts it ...
    with pytest.raises(ValueError):
        pit.strict_loads(pit.CORPUS[case])  # ... the strict one does not


def test_control_strict_loads_accepts_ordinary_json():
    assert pit.strict_loads('{"a": [1, 2.5, "é", null]}') == {"a": [1, 2.5, "é", None]}


def test_a_date_time_without_offset_is_local_time_in_javascript(node):
    lines = [line.split() for line in pit.node(pit.NODE_DATES).splitlines()]
    by = {(tz, text): iso for tz, text, iso in lines}
    assert by["UTC", "2026-03-29T01:30:00"] != by["America/New_York", "2026-03-29T01:30:00"]
    # the controls: with an offset, or a date alone (read as UTC), the zone does not matter
    assert by["UTC", "2026-03-29T01:30:00Z"] == by["America/New_York", "2026-03-29T01:30:00Z"]
    assert by["UTC", "2026-03-29"] == by["America/New_York", "2026-03-29"]
