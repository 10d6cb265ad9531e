"""CSRF and IDOR against a small real HTTP server on loopback with cookie sessions: a
cross-site form POST moves money when the cookie has no SameSite attribute and the form no
CSRF token, and fails with either; user A reads user B's record by changing an id until
the handler checks who owns it.

Run: python snippets/security/auth_csrf_idor.py
"""

from __future__ import annotations

import hmac
import http.client
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode

MAX_BODY = 4096  # bytes: a larger form gets 413
TIMEOUT = 5.0


@dataclass
class Config:
    samesite: str | None = None  # the session cookie's SameSite attribute (None: absent)
    csrf_token: bool = False  # require a per-session token in every state-changing form
    check_owner: bool = False  # authorize record reads by owner


@dataclass
class State:
    sessions: dict[str, dict[str, str]] = field(default_factory=dict)  # sid -> user, csrf
    balances: dict[str, int] = field(default_factory=lambda: {"alice": 100, "mallory": 0})
    records: dict[int, tuple[str, str]] = field(
        default_factory=lambda: {
            1: ("alice", "alice's tax return"),
            2: ("bob", "bob's lab results"),
        }
    )


# --8<-- [start:handlers]
def number(text: str) -> int | None:
    """A decimal number of at most 18 ASCII digits, or None. Not str.isdigit(): that also
    accepts "²" and other Unicode digits, on which int() raises."""
    return int(text) if re.fullmatch(r"[0-9]{1,18}", text) else None


def transfer(state: State, config: Config, user: str, form: dict[str, str]) -> tuple[int, str]:
    if config.csrf_token:
        expected = state.sessions[form["_sid"]]["csrf"]
        if not hmac.compare_digest(form.get("csrf", ""), expected):
            return 403, "CSRF token missing or wrong"
    amount, to = number(form.get("amount", "")), form.get("to", "")
    if amount is None or to not in state.balances or not 0 < amount <= state.balances[user]:
        return 400, "bad transfer"
    state.balances[user] -= amount
    state.balances[to] += amount
    return 200, f"{user} sent {amount} to {to}"


def read_record(state: State, config: Config, user: str, record_id: str) -> tuple[int, str]:
    if (number_id := number(record_id)) is None:
        return 400, "record id must be a number"
    record = state.records.get(number_id)
    if record is None:
        return 404, "no such record"
    owner, text = record
    if config.check_owner and owner != user:
        return 404, "no such record"  # same answer as "missing": ids are not confirmed
    return 200, f"{owner}: {text}"


# --8<-- [end:handlers]


# --8<-- [start:server]
def make_handler(state: State, config: Config) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 2.0  # a client that stalls mid-request is disconnected

        def log_message(self, *args: object) -> None:
            pass

        def answer(self, status: int, body: str, cookie: str | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if cookie:
                self.send_header("Set-Cookie", cookie)
            self.end_headers()
            self.wfile.write(data)

        def user(self) -> tuple[str | None, str | None]:
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
            sid = cookie["sid"].value if "sid" in cookie else None
            session = state.sessions.get(sid or "")
            return (session["user"], sid) if session else (None, None)

        def do_GET(self) -> None:
            user, sid = self.user()
            if user is None:
                return self.answer(401, "log in first")
            if self.path == "/transfer":  # the bank's own form, with the session's token
                return self.answer(
                    200, f'<input name="csrf" value="{state.sessions[sid]["csrf"]}">'
                )
            if self.path.startswith("/records/"):
                return self.answer(*read_record(state, config, user, self.path[9:]))
            self.answer(404, "not found")

        def form(self) -> dict[str, str] | tuple[int, str]:
            """The urlencoded body, or the error for a body it will not read. An error
            before the body is read closes the connection (its bytes would be taken for the
            next request), except 411: without Content-Length or Transfer-Encoding a
            request has no body (RFC 9112 6.3)."""
            if "Transfer-Encoding" in self.headers:  # RFC 9112 6.1: close after answering
                self.close_connection = True
                return 501, "Transfer-Encoding not supported: send Content-Length"
            lengths = self.headers.get_all("Content-Length") or []
            if not lengths:
                return 411, "Content-Length required"
            length = number(lengths[0]) if len(lengths) == 1 else None
            if length is None:  # RFC 9112 6.3: an invalid Content-Length is a 400
                self.close_connection = True
                return 400, "bad Content-Length"
            if length > MAX_BODY:
                self.close_connection = True  # the body is not read
                return 413, f"form larger than {MAX_BODY} bytes"
            try:
                text = self.rfile.read(length).decode("utf-8")
            except UnicodeDecodeError:
                return 400, "form is not UTF-8"
            return {k: v[0] for k, v in parse_qs(text).items()}

        def do_POST(self) -> None:
            form = self.form()
            if isinstance(form, tuple):
                return self.answer(*form)
            if self.path == "/login":
                if not form.get("user", "").isalnum():
                    return self.answer(400, "user required")
                sid = secrets.token_urlsafe(32)
                state.sessions[sid] = {"user": form["user"], "csrf": secrets.token_urlsafe(32)}
                cookie = f"sid={sid}; Path=/; HttpOnly"
                if config.samesite:
                    cookie += f"; SameSite={config.samesite}"
                return self.answer(200, f"logged in as {form['user']}", cookie)
            user, sid = self.user()
            if user is None:
                return self.answer(401, "log in first")
            if self.path == "/transfer":
                return self.answer(*transfer(state, config, user, {**form, "_sid": sid}))
            if self.path == "/logout":  # the server forgets the session: every copy is dead
                state.sessions.pop(sid or "", None)
                return self.answer(200, "logged out", "sid=; Path=/; Max-Age=0")
            self.answer(404, "not found")

    return Handler


@contextmanager
def bank(config: Config) -> Iterator[tuple[int, State]]:
    state = State()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state, config))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1], state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


# --8<-- [end:server]


# --8<-- [start:browser]
@dataclass
class Browser:
    """A model of the browser's cookie decision (not a real browser): one cookie jar, and
    RFC 6265bis's SameSite rule for a request whose initiator is another site. Every
    request is a top-level navigation (a link followed, a form submitted), never a
    subresource such as an <img> or a fetch(), which Lax keeps the cookie off."""

    port: int
    cookies: dict[str, tuple[str, str | None]] = field(
        default_factory=dict
    )  # name -> value, SameSite

    def send(self, method: str, path: str, form: dict | None, from_site: str) -> tuple[int, str]:
        cross_site = from_site != "127.0.0.1"
        headers = {"Origin": f"http://{from_site}"} if method == "POST" else {}
        jar = []
        for name, (value, samesite) in self.cookies.items():
            if cross_site and samesite == "Strict":
                continue  # never on a cross-site request
            if cross_site and samesite == "Lax" and method != "GET":
                continue  # only on top-level navigations (all of the model's) with GET
            jar.append(f"{name}={value}")  # SameSite=None, or absent in a browser without
            #                                Lax-by-default: sent
        if jar:
            headers["Cookie"] = "; ".join(jar)
        body = urlencode(form or {})
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        try:
            conn.request(method, path, body=body if method == "POST" else None, headers=headers)
            response = conn.getresponse()
            text = response.read().decode()
            if set_cookie := response.getheader("Set-Cookie"):
                value = set_cookie.split(";")[0].split("=", 1)[1]
                attrs = dict(a.strip().partition("=")[::2] for a in set_cookie.split(";")[1:])
                self.cookies["sid"] = (value, attrs.get("SameSite"))
                if attrs.get("Max-Age") == "0":  # the server asks the browser to forget it
                    del self.cookies["sid"]
            return response.status, text
        finally:
            conn.close()


# --8<-- [end:browser]


# --8<-- [start:run]
ATTACK = {"to": "mallory", "amount": "100"}  # the hidden form on attacker.test, auto-submitted


def csrf(config: Config) -> tuple[int, str, dict[str, int]]:
    """Alice logs in to the bank, then visits attacker.test, whose page POSTs the form."""
    with bank(config) as (port, state):
        browser = Browser(port)
        browser.send("POST", "/login", {"user": "alice"}, from_site="127.0.0.1")
        status, text = browser.send("POST", "/transfer", ATTACK, from_site="attacker.test")
        return status, text, dict(state.balances)


def legitimate_transfer(config: Config) -> tuple[int, str]:
    """The control: alice uses the bank's own form, token included."""
    with bank(config) as (port, _):
        browser = Browser(port)
        browser.send("POST", "/login", {"user": "alice"}, from_site="127.0.0.1")
        page = browser.send("GET", "/transfer", None, from_site="127.0.0.1")[1]
        token = re.search(r'value="([^"]+)"', page)
        form = {**ATTACK, "csrf": token.group(1) if token else ""}
        return browser.send("POST", "/transfer", form, from_site="127.0.0.1")[:2]


def idor(config: Config) -> dict[str, tuple[int, str]]:
    with bank(config) as (port, _):
        browser = Browser(port)
        browser.send("POST", "/login", {"user": "alice"}, from_site="127.0.0.1")
        return {
            f"alice GET /records/{n}": browser.send("GET", f"/records/{n}", None, "127.0.0.1")
            for n in (1, 2)
        }


# --8<-- [end:run]


def main() -> None:
    print("CSRF: alice is logged in; attacker.test POSTs to=mallory&amount=100")
    for name, config in [
        ("no SameSite, no CSRF token", Config()),
        ("SameSite=Lax", Config(samesite="Lax")),
        ("CSRF token required", Config(csrf_token=True)),
    ]:
        status, text, balances = csrf(config)
        print(f"  {name:27} {status} {text:28} balances {balances}")
    status, text = legitimate_transfer(Config(samesite="Lax", csrf_token=True))
    print(f"  control: the bank's own form (SameSite=Lax + token): {status} {text}")
    print("IDOR: alice owns record 1, bob owns record 2")
    for name, config in [("no owner check", Config()), ("owner checked", Config(check_owner=True))]:
        for request, (status, text) in idor(config).items():
            print(f"  {name:15} {request}: {status} {text}")


if __name__ == "__main__":
    main()
