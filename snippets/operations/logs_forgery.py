"""A request id from a header is untrusted input: written into a hand-formatted log line it
can add or overwrite fields, or break the line; structlog's JSONRenderer keeps it one string.

Run: python snippets/operations/logs_forgery.py
"""

from __future__ import annotations

import json
import re
import shlex
from io import StringIO

import h11
import structlog
from structlog.processors import JSONRenderer

REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # the same rule as logs_request_id.py
USER = "mallory"  # the line is about her failed login; an attacker wants it to say otherwise
SENT = {  # what a client can put in X-Request-ID
    "a plain id (the control)": "req-7",
    "spaces and quotes": 'abc event="login ok" user=admin',
    "a JSON fragment": 'x", "user": "admin',
    "an escape sequence": "\x1b[2K\x1b[1Gall good",  # ESC [2K: erase line; ESC [1G: column 1
    "a carriage return": "abc\rlevel=info",
}


# --8<-- [start:formats]
def as_server_sees_it(value: str) -> str | None:
    """The X-Request-ID value after h11 (the parser of our services) reads the request;
    None when h11 refuses the request (the server answers 400)."""
    parser = h11.Connection(h11.SERVER)
    parser.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID: " + value.encode("latin-1")
                        + b"\r\n\r\n")  # fmt: skip
    try:
        request = parser.next_event()
    except h11.RemoteProtocolError:
        return None
    return dict(request.headers)[b"x-request-id"].decode("latin-1")


def text_line(request_id: str) -> str:  # naive: key=value text, written with an f-string
    return f'level=warning event="login failed" user={USER} request_id={request_id}'


def fstring_json_line(request_id: str) -> str:  # naive: JSON-looking, written with an f-string
    return ('{"level": "warning", "event": "login failed", '
            f'"user": "{USER}", "request_id": "{request_id}"}}')  # fmt: skip


def structlog_line(request_id: str) -> str:  # structlog's JSONRenderer: json.dumps underneath
    file = StringIO()
    log = structlog.wrap_logger(structlog.PrintLogger(file), processors=[JSONRenderer()])
    log.warning("login failed", level="warning", user=USER, request_id=request_id)
    return file.getvalue().rstrip("\n")


def parse_text(line: str) -> dict:
    """One way to read key=value text: split like a shell, last key wins (logfmt readers
    differ on repeated keys; this is the kind the forgery works on)."""
    return dict(word.split("=", 1) for word in shlex.split(line) if "=" in word)


# --8<-- [end:formats]


def verdict(line: str, parse, request_id: str) -> str:
    """What a reader of the line gets back: the original fields, forged ones, or nothing."""
    if "\x1b" in line or "\r" in line:
        raw = "raw ESC" if "\x1b" in line else "raw CR"
        try:
            parse(line)
        except ValueError:
            return f"{raw}; unreadable"
        return f"{raw} in the file"
    try:
        fields = parse(line)
    except ValueError:
        return "unreadable"
    if fields.get("user") != USER or fields.get("event") != "login failed":
        return f"forged: user={fields.get('user')}"
    return "intact" if fields.get("request_id") == request_id else "id mangled"


def table() -> list[tuple[str, str, str, str, str, str]]:
    rows = []
    for kind, sent in SENT.items():
        seen = as_server_sees_it(sent)
        if seen is None:
            rows.append((kind, "400", "-", "-", "-", "-"))
            continue
        rows.append((
            kind, "yes",
            verdict(text_line(seen), parse_text, seen),
            verdict(fstring_json_line(seen), json.loads, seen),
            verdict(structlog_line(seen), json.loads, seen),
            "accepted" if REQUEST_ID.fullmatch(seen) else "refused",
        ))  # fmt: skip
    return rows


def main() -> None:
    heads = ("X-Request-ID holds", "h11", "key=value text", 'f-string "JSON"', "structlog JSON",
             "our rule")  # fmt: skip
    widths = (26, 5, 21, 21, 16, 9)
    for row in (heads, *table()):
        print("".join(f"{cell:<{width}}" for cell, width in zip(row, widths, strict=True)).rstrip())
    print("\nthe escape sequence, as each format writes it:")
    seen = as_server_sees_it(SENT["an escape sequence"])
    print("  text:      ", ascii(text_line(seen)))  # ascii(): show the ESC bytes, do not send them
    print("  structlog: ", structlog_line(seen))


if __name__ == "__main__":
    main()
