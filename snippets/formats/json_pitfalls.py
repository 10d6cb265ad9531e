"""JSON's pitfalls, run through three real parsers — Python's json, orjson and Node.js's
JSON.parse: big integers, NaN, duplicate keys, lone surrogates, dates without an offset.

Run: python snippets/formats/json_pitfalls.py
Needs: NODE_BIN
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
import os
import re
import shutil
import subprocess
import sys
from typing import Any

import orjson

# --8<-- [start:corpus]
CORPUS = {  # name: the JSON text (a few of Seriot's JSONTestSuite cases, and more)
    "2^53 - 1": "[9007199254740991]",
    "2^53 + 1": "[9007199254740993]",
    "2^64": "[18446744073709551616]",
    "1e400": "[1e400]",
    "-0.0": "[-0.0]",
    "1.0": "[1.0]",
    "NaN": "[NaN]",
    "Infinity": "[Infinity]",
    "duplicate key": '{"a": 1, "a": 2}',
    "lone surrogate": '["\\ud800"]',
    "escaped NUL": '["\\u0000"]',
    "raw control char": '["\x01"]',
    "trailing comma": "[1,]",
    "leading zero": "[01]",
    "byte order mark": "\ufeff[1]",
    "text after the value": "[1] x",
}
# --8<-- [end:corpus]


def find_node() -> str:
    """NODE_BIN if set, else node on PATH; exit with a hint if missing."""
    found = os.environ.get("NODE_BIN") or shutil.which("node")
    if not found:
        sys.exit("node is not installed: sudo apt-get install nodejs  (macOS: brew install node)")
    return found


# --8<-- [start:parsers]
def show(value: Any) -> str:
    """A parsed value written out unambiguously (floats keep their point, -0.0 its sign)."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return {math.inf: "Infinity", -math.inf: "-Infinity"}.get(value, repr(value))
    if isinstance(value, str):
        return json.dumps(value)  # escapes control characters and lone surrogates
    if isinstance(value, list):
        return "[" + ",".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{show(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def python_parse(parse: Any, text: str) -> str:
    try:
        return show(parse(text))
    except ValueError:  # json.JSONDecodeError and orjson.JSONDecodeError are ValueErrors
        return "error"


NODE_PARSE = """
const show = (v) => typeof v === "number" ? (Object.is(v, -0) ? "-0" : String(v))
  : typeof v === "string" ? JSON.stringify(v)
  : Array.isArray(v) ? "[" + v.map(show).join(",") + "]"
  : v !== null && typeof v === "object"
    ? "{" + Object.entries(v).map(([k, x]) => JSON.stringify(k) + ":" + show(x)).join(",") + "}"
  : JSON.stringify(v);
const texts = JSON.parse(require("fs").readFileSync(0, "utf8"));
console.log(JSON.stringify(texts.map((t) => { try { return show(JSON.parse(t)); }
                                          catch (e) { return "error"; } })));
"""


def node(script: str, stdin: str = "", tz: str = "UTC") -> str:
    """Run a script with Node.js; its stdout."""
    run = subprocess.run(
        [find_node(), "-e", script], input=stdin, capture_output=True, text=True,
        timeout=10, env={**os.environ, "TZ": tz}, check=True,
    )  # fmt: skip
    return run.stdout.strip()


def parse_everywhere(corpus: dict[str, str]) -> dict[str, dict[str, str]]:
    """{case: {"json": ..., "orjson": ..., "node": ...}}: what each parser made of it."""
    from_node = json.loads(node(NODE_PARSE, json.dumps(list(corpus.values()))))
    return {
        name: {
            "json": python_parse(json.loads, text),
            "orjson": python_parse(orjson.loads, text),
            "node": from_node[i],
        }
        for i, (name, text) in enumerate(corpus.items())
    }


def same_values(cells: list[str]) -> bool:
    """Whether the cells hold the same values, not the same text: 1.0 and 1 are one double
    (JavaScript has no separate integer), -0.0 and -0 one negative zero. Numbers compare
    exactly, as decimals, with the sign of zero kept."""

    def exact(cell: str) -> Any:
        if cell == "error":
            return cell
        value = json.loads(cell, parse_float=decimal.Decimal, parse_int=decimal.Decimal,
                           parse_constant=str)  # fmt: skip
        return canonical(value)

    def canonical(value: Any) -> Any:
        if isinstance(value, decimal.Decimal):
            return (value, value.is_signed())
        if isinstance(value, list):
            return [canonical(v) for v in value]
        if isinstance(value, dict):
            return {k: canonical(v) for k, v in value.items()}
        return value

    first, *rest = (exact(cell) for cell in cells)
    return all(other == first for other in rest)


# --8<-- [end:parsers]


# --8<-- [start:writers]
def writers() -> dict[str, str]:
    """What each side *writes* for values JSON has no room for."""

    def attempt(call: Any) -> str:
        try:
            out = call()
            return out.decode() if isinstance(out, bytes) else out
        except (TypeError, ValueError) as error:
            return f"{type(error).__name__}: {error}"

    naive = datetime.datetime(2026, 3, 29, 1, 30)
    aware = naive.replace(tzinfo=datetime.UTC)
    return {
        "json.dumps(nan)": attempt(lambda: json.dumps(math.nan)),
        "json.dumps(nan, allow_nan=False)": attempt(lambda: json.dumps(math.nan, allow_nan=False)),
        "orjson.dumps(nan)": attempt(lambda: orjson.dumps(math.nan)),
        "json.dumps('\\ud800')": attempt(lambda: json.dumps("\ud800")),
        "orjson.dumps('\\ud800')": attempt(lambda: orjson.dumps("\ud800")),
        "json.dumps(naive datetime)": attempt(lambda: json.dumps(naive)),
        "orjson.dumps(naive datetime)": attempt(lambda: orjson.dumps(naive)),
        "orjson.dumps(aware datetime)": attempt(lambda: orjson.dumps(aware)),
    }


MAX_DEPTH = 512  # our limit on nested arrays and objects; RFC 8259 §9 allows one
TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[][{}]')  # a string (skipped) or a bracket


def too_deep(text: str) -> bool:
    """Whether arrays and objects nest deeper than MAX_DEPTH (brackets inside strings not
    counted); it stops at the first bracket past the limit."""
    level = 0
    for match in TOKENS.finditer(text):
        token = match[0]
        if token in ("[", "{"):
            level += 1
            if level > MAX_DEPTH:
                return True
        elif token in ("]", "}"):
            level -= 1
    return False


def strict_loads(text: str) -> Any:
    """json.loads that refuses what RFC 8259 leaves to chance: duplicate names, NaN and
    Infinity (written as such, or a number too large for a double, like 1e400), and lone
    surrogates; and nesting deeper than MAX_DEPTH, checked before parsing (json.loads
    alone stops only at the interpreter's recursion limit, with a RecursionError)."""
    if too_deep(text):
        raise ValueError(f"arrays and objects nested more than {MAX_DEPTH} deep")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate names in an object: {sorted(names)}")
        return dict(pairs)

    def no_constant(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{text} is out of a double's range")
        return value

    value = json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constant,
                       parse_float=finite)  # fmt: skip
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a lone surrogate (\\ud800-\\udfff) is not a Unicode character") from None
    return value


# --8<-- [end:writers]

# --8<-- [start:dates]
NODE_DATES = """for (const tz of ["UTC", "America/New_York"]) {
  process.env.TZ = tz;  // Node re-reads the zone when TZ changes
  for (const t of ["2026-03-29T01:30:00", "2026-03-29T01:30:00Z", "2026-03-29"])
    console.log(tz.padEnd(17), t.padEnd(21), new Date(t).toISOString());
}"""
# --8<-- [end:dates]


def main() -> None:
    results = parse_everywhere(CORPUS)
    print(f"{'case':<21} {'json':<25} {'orjson':<25} node")
    for name, got in results.items():
        cells = [got[p] for p in ("json", "orjson", "node")]
        marker = "" if same_values(cells) else " <- differ"
        print(f"{name:<21} {' '.join(f'{c:<25}' for c in cells)}{marker}".rstrip())
    print(f"\n2^53 + 1 as an IEEE-754 double (what JSON.parse stores): {float(2**53 + 1):.0f}")

    print("\nwriting values JSON has no room for:")
    for call, out in writers().items():
        print(f"  {call:<34} {out}")

    print("\nstrict_loads on the cases json accepted but should not:")
    for name in ("duplicate key", "NaN", "1e400", "lone surrogate"):
        try:
            strict_loads(CORPUS[name])
            print(f"  {name:<15} accepted")
        except ValueError as error:
            print(f"  {name:<15} refused: {str(error)[:60]}")

    print("\nnew Date(text) in Node, by the process's time zone:")
    print("  " + node(NODE_DATES).replace("\n", "\n  "))


if __name__ == "__main__":
    main()
