"""A consumer-driven contract: the consumer writes down what it uses of a provider's answer,
the real provider (an HTTP server on 127.0.0.1) is verified against it, and a renamed or
retyped field fails verification while the provider's own unit tests pass; an added field
does not.

Run: python snippets/operations/testing_contract.py
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TIMEOUT = 2.0  # seconds: every client call, and a server's wait for a slow client

# --8<-- [start:contract]
# Written by the consumer (the orders page), from what its code reads; kept as data (a Pact
# file is JSON like this). "match": "type" is Pact's like(): any value of the same JSON type.
CONTRACT: dict[str, Any] = {
    "consumer": "orders-page",
    "provider": "users-service",
    "interactions": [
        {
            "description": "a request for an existing user",
            "provider_state": "user 7 exists",
            "request": {"method": "GET", "path": "/users/7"},
            "response": {
                "status": 200,
                "headers": {"Content-Type": "application/json"},
                "body": {"id": 7, "email": "ada@example.com", "name": "Ada Lovelace"},
                "match": "type",
            },
        },
        {
            "description": "a request for a user who does not exist",
            "provider_state": "no user 99",
            "request": {"method": "GET", "path": "/users/99"},
            "response": {"status": 404},
        },
    ],
}


# --8<-- [end:contract]


# --8<-- [start:consumer]
def fetch_user(port: int, user_id: int) -> dict[str, Any] | None:
    """The consumer's client: the user, or None for 404."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", f"/users/{user_id}")
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status == 404:
        return None
    if response.status != 200:
        raise RuntimeError(f"users-service answered {response.status}")
    return json.loads(body)


def order_label(user: dict[str, Any]) -> str:
    """What the orders page prints: it uses id, email and name, nothing else."""
    return f"{user['name']} <{user['email']}>, customer #{user['id']:05d}"


# --8<-- [end:consumer]


# --8<-- [start:provider]
USERS = {7: {"id": 7, "email": "ada@example.com", "name": "Ada Lovelace"}}


def render_v1(user: dict) -> dict:
    return {"id": user["id"], "email": user["email"], "name": user["name"]}


def render_renamed(user: dict) -> dict:  # "name" is now "full_name"
    return {"id": user["id"], "email": user["email"], "full_name": user["name"]}


def render_retyped(user: dict) -> dict:  # ids become strings (they were about to overflow)
    return {"id": str(user["id"]), "email": user["email"], "name": user["name"]}


def render_added(user: dict) -> dict:  # a new field: compatible, old readers ignore it
    return {**render_v1(user), "created_at": "2026-01-05T10:00:00Z"}


# Each version ships with the unit test its own team wrote for it, and passes it.
PROVIDER_VERSIONS: dict[str, tuple[Callable[[dict], dict], Callable[[dict], bool]]] = {
    "v1": (render_v1, lambda b: b == {"id": 7, "email": "ada@example.com", "name": "Ada Lovelace"}),
    "v2 renames name": (render_renamed, lambda b: b["full_name"] == "Ada Lovelace"),
    "v2 makes id a string": (render_retyped, lambda b: b["id"] == "7"),
    "v2 adds created_at": (render_added, lambda b: b["created_at"].endswith("Z")),
}


def provider_unit_test(version: str) -> bool:
    render, check = PROVIDER_VERSIONS[version]
    return check(render(USERS[7]))


# --8<-- [end:provider]


# --8<-- [start:verify]
def json_type(value: Any) -> str:
    if isinstance(value, bool):  # before int: True is an int in Python, not in JSON
        return "boolean"
    for kind, name in ((int, "number"), (float, "number"), (str, "string"), (list, "array")):
        if isinstance(value, kind):
            return name
    return "object" if isinstance(value, dict) else "null"


def mismatches(expected: Any, actual: Any, match: str, path: str = "body") -> list[str]:
    """Pact's rules for a response: every expected key present (extra keys are fine: Postel's
    law), each value equal -- or, with match="type", of the same JSON type."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key, value in expected.items():
            if key not in actual:
                found.append(f"{path}.{key} is missing")
            else:
                found += mismatches(value, actual[key], match, f"{path}.{key}")
        return found
    if json_type(expected) != json_type(actual):
        return [f"{path}: expected a {json_type(expected)}, got {json_type(actual)} {actual!r}"]
    if match != "type" and expected != actual:
        return [f"{path}: expected {expected!r}, got {actual!r}"]
    return []


def verify(contract: dict, port: int, set_state: Callable[[str], None]) -> list[str]:
    """Replay each interaction against the running provider; [] means it honours them all."""
    problems = []
    for interaction in contract["interactions"]:
        set_state(interaction["provider_state"])
        request, want = interaction["request"], interaction["response"]
        where = f"{request['method']} {request['path']}"
        try:
            status, headers, body = call(port, request["method"], request["path"])
        except (OSError, http.client.HTTPException) as error:
            problems.append(f"{where}: no answer ({type(error).__name__}: {error})")
            continue
        if status != want["status"]:
            problems.append(f"{where}: status {status}, expected {want['status']}")
            continue
        for name, value in want.get("headers", {}).items():
            if headers.get(name.lower(), "").split(";")[0].strip() != value:
                problems.append(f"{where}: header {name} is {headers.get(name.lower())!r}")
        if "body" in want:
            try:
                actual = json.loads(body)
            except ValueError:
                problems.append(f"{where}: body is not JSON: {body[:40]!r}")
                continue
            found = mismatches(want["body"], actual, want.get("match", "equality"))
            problems += [f"{where}: {m}" for m in found]
    return problems


# --8<-- [end:verify]


def call(port: int, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, response.read(64 * 1024)
    finally:
        conn.close()


# --8<-- [start:server]
USER_PATH = re.compile(r"/users/([0-9]{1,9})")

Answer = tuple[int, dict | None]  # status, JSON body
Route = Callable[[str], Answer]  # GET path -> answer


HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


class Handler(BaseHTTPRequestHandler):
    """GET only; http.server answers a malformed request line 400, an over-long one 414,
    an over-long or 101st header line 431, and other methods 501; we add 400 for an
    HTTP/1.1 request without Host, any request with two or an invalid one, and for
    HTTP/0.9's two-word form."""

    timeout = TIMEOUT  # a client that sends nothing for this long is dropped
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # not 0.9: an error answer gets a status line

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if len(self.requestline.split()) != 3:  # HTTP/0.9's "GET /path": not served here
            self.send_error(400, None, "HTTP/0.9 requests are not served")
            return False
        hosts = self.headers.get_all("Host", [])
        # RFC 9112 §3.2 MUSTs: 400 for an HTTP/1.1 request without Host, and for any request
        # with more than one Host line or an invalid value (checked here as host[:port])
        if (self.request_version == "HTTP/1.1" and not hosts) or len(hosts) > 1:
            self.send_error(400, None, "Host missing or repeated")
            return False
        if hosts and not HOST.fullmatch(hosts[0].strip()):
            self.send_error(400, None, "invalid Host")
            return False
        return True

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        status, body = self.server.route(self.path)  # type: ignore[attr-defined]
        data = json.dumps(body if body is not None else {"error": "not found"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@contextmanager
def serve(route: Route) -> Iterator[int]:
    """An HTTP server on 127.0.0.1, an ephemeral port, in a thread; stopped on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.route = route  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


class Provider:
    """users-service at one version, with the state hooks its verification calls."""

    def __init__(self, version: str, user_7: dict = USERS[7]) -> None:
        self.render = PROVIDER_VERSIONS[version][0]
        self.user_7 = user_7  # the provider's own test data for the state "user 7 exists"
        self.users: dict[int, dict] = {}

    def set_state(self, state: str) -> None:  # Pact's "provider states"
        self.users = {7: self.user_7} if state == "user 7 exists" else {}

    def route(self, path: str) -> Answer:
        match = USER_PATH.fullmatch(path)
        if match and int(match[1]) in self.users:
            return 200, self.render(self.users[int(match[1])])
        return 404, None


def stub_route(contract: dict) -> Route:
    """The consumer's side: a stub provider that answers the contract's examples."""
    answers = {i["request"]["path"]: i["response"] for i in contract["interactions"]}

    def route(path: str) -> Answer:
        want = answers.get(path, {"status": 404})
        return want["status"], want.get("body")

    return route


# --8<-- [end:server]


def consumer_test(port: int) -> str:
    """The consumer's own test, against whatever answers on `port`."""
    try:
        user = fetch_user(port, 7)
        assert user is not None and fetch_user(port, 99) is None
        return "pass: " + order_label(user)
    except (AssertionError, KeyError, ValueError, TypeError, RuntimeError) as error:
        return f"FAIL {type(error).__name__}: {error}"


def provider_row(version: str, contract: dict = CONTRACT) -> tuple[bool, list[str], str]:
    """(the provider's unit test, contract verification problems, the consumer's test)."""
    provider = Provider(version)
    with serve(provider.route) as port:
        problems = verify(contract, port, provider.set_state)
        provider.set_state("user 7 exists")
        return provider_unit_test(version), problems, consumer_test(port)


def main() -> None:
    with serve(stub_route(CONTRACT)) as stub:
        print(f"Consumer test against a stub built from the contract: {consumer_test(stub)}")
    contract = json.loads(json.dumps(CONTRACT))  # a contract travels as a JSON file
    print("\nProvider versions, each a real HTTP server, verified against the contract:")
    for version in PROVIDER_VERSIONS:
        unit, problems, in_production = provider_row(version, contract)
        verdict = "verified" if not problems else "BROKEN"
        print(f"  {version:22} own unit test: {'pass' if unit else 'FAIL'}   contract: {verdict}")
        for problem in problems:
            print(f"      {problem}")
        print(f"      the consumer, if deployed against it: {in_production}")


if __name__ == "__main__":
    main()
