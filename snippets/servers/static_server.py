"""A static file server with sendfile, ETag / If-None-Match (304), Range (206 / 416) and
If-Range, and path traversal refused.

Run: python snippets/servers/static_server.py
"""

from __future__ import annotations

import email.utils
import http.client
import mimetypes
import os
import re
import socketserver
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MAX_HEAD = 8192  # bytes of request line + headers before 431 (a request line alone: 414)
REASONS = {
    200: "OK",
    206: "Partial Content",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    416: "Range Not Satisfiable",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
}


class HttpError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


# --8<-- [start:resolve]
def resolve(root: Path, target: str) -> Path | None:
    """The file a request target names, or None if it is missing or outside root."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(target).path)  # %2e%2e is ".." too
    if not path.startswith("/") or "\0" in path:
        return None
    candidate = (root / path.lstrip("/")).resolve()  # collapses "..", follows symlinks
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None  # same answer for "outside" and "missing": reveal nothing
    return candidate


# --8<-- [end:resolve]


# --8<-- [start:validators]
def etag_of(stat: os.stat_result) -> str:
    """A strong validator that changes when the file does: size and mtime, like NGINX's
    (which is "%xT-%xO", mtime in whole seconds then size, both in hex). Nanoseconds here:
    two edits of the same length within one second still get different tags."""
    return f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'


def none_match(header: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: true when If-None-Match lists this ETag (weak comparison) or is *."""
    if header is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag.removeprefix("W/") in tags


# --8<-- [end:validators]


# --8<-- [start:range]
RANGE = re.compile(r"bytes=(\d{1,18})?-(\d{1,18})?")  # 18 digits: up to an exabyte


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """RFC 9110 §14.2: (first, last) to send, None to send the whole file, or HttpError(416).

    A header we cannot parse (a 19-digit number too), another unit, several ranges, or any
    range of an empty file (no Content-Range can describe a part of nothing): ignore it, as
    §14.2 allows, and send 200 with everything. A well-formed range that selects no byte
    of a non-empty file — it starts past the end, or asks for the last 0 bytes — gets 416."""
    match = RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.groups() == (None, None) or size == 0:
        return None
    first, last = (None if g is None else int(g) for g in match.groups())
    if first is None:  # bytes=-N: the last N bytes
        if last == 0:
            raise HttpError(416)
        return max(0, size - last), size - 1
    if last is not None and last < first:
        return None  # invalid range-spec: ignore the header
    if first >= size:
        raise HttpError(416)
    return first, size - 1 if last is None else min(last, size - 1)


def if_range_holds(header: str | None, etag: str, last_modified: str) -> bool:
    """RFC 9110 §13.1.5: a client resuming a download sends If-Range with the validator of
    the part it has. Send the range only if that is still the current file (strong
    comparison: a weak W/ tag never matches); otherwise the whole file, with 200."""
    return header is None or header.strip() in (etag, last_modified)


# --8<-- [end:range]


# --8<-- [start:head]
class StaticHandler(socketserver.StreamRequestHandler):
    root: Path  # set by static_server()
    timeout = 2  # seconds for the whole request head, however it trickles in; then 408

    def handle(self) -> None:
        try:
            method, target, headers = self.read_head()
            self.respond(method, target, headers)
        except HttpError as error:
            self.send_head(error.status, {"Content-Length": "0"})
        except TimeoutError:
            self.send_head(408, {"Content-Length": "0"})
        except (ConnectionError, UnicodeDecodeError):
            pass

    def read_head(self) -> tuple[str, str, dict[str, str]]:
        """One deadline for the whole head: a timeout per recv() would let a client that
        sends a byte now and then (slowloris) hold this thread forever."""
        deadline, data = time.monotonic() + self.timeout, b""
        while (end := data.find(b"\r\n\r\n")) < 0 and len(data) <= MAX_HEAD:
            if (left := deadline - time.monotonic()) <= 0:
                raise TimeoutError("request head incomplete at the deadline")
            self.connection.settimeout(left)
            if not (chunk := self.connection.recv(4096)):
                raise ConnectionError("client closed mid-request")
            data += chunk
        if end < 0 or end > MAX_HEAD:
            line_end = data.find(b"\r\n")
            # RFC 9112 §3: a request-target longer than the server will parse MUST get 414
            raise HttpError(414 if line_end < 0 or line_end > MAX_HEAD else 431)
        self.connection.settimeout(self.timeout)  # sending the response: its own timeout
        lines = data[:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise HttpError(400)
        headers = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise HttpError(400)  # RFC 9112 §5.1: no space before the colon
            headers[name.lower()] = value.strip()
        return parts[0], parts[1], headers

    # --8<-- [end:head]
    # --8<-- [start:handler]
    def respond(self, method: str, target: str, headers: dict[str, str]) -> None:
        if method not in ("GET", "HEAD"):
            return self.send_head(405, {"Allow": "GET, HEAD", "Content-Length": "0"})
        path = resolve(self.root, target)
        if path is None:
            return self.send_head(404, {"Content-Length": "0"})
        with path.open("rb") as file:
            stat = os.fstat(file.fileno())
            fields = {
                "ETag": etag_of(stat),
                "Accept-Ranges": "bytes",
                "Last-Modified": email.utils.formatdate(stat.st_mtime, usegmt=True),
            }
            if none_match(headers.get("if-none-match"), fields["ETag"]):
                return self.send_head(304, fields)  # checked before Range (RFC 9110 §13.2.2)
            wanted = headers.get("range")
            if not if_range_holds(headers.get("if-range"), fields["ETag"], fields["Last-Modified"]):
                wanted = None  # the part the client has is of an older file: send it all
            try:
                span = byte_range(wanted, stat.st_size)
            except HttpError:
                return self.send_head(
                    416, {"Content-Range": f"bytes */{stat.st_size}", "Content-Length": "0"}
                )
            first, last = span or (0, stat.st_size - 1)
            fields["Content-Type"] = (
                mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            )
            fields["Content-Length"] = str(last - first + 1)
            if span:
                fields["Content-Range"] = f"bytes {first}-{last}/{stat.st_size}"
            self.send_head(206 if span else 200, fields)
            if method == "GET" and last >= first:
                self.wfile.flush()
                # Zero-copy: the kernel moves file pages to the socket; Python never sees them.
                self.connection.sendfile(file, offset=first, count=last - first + 1)
        return None

    def send_head(self, status: int, fields: dict[str, str]) -> None:
        fields = {"Date": email.utils.formatdate(usegmt=True), **fields}  # RFC 9110 §6.6.1 MUST
        head = f"HTTP/1.1 {status} {REASONS[status]}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in fields.items()
        )
        self.wfile.write((head + "Connection: close\r\n\r\n").encode("latin-1"))


# --8<-- [end:handler]


@contextmanager
def static_server(root: Path) -> Iterator[tuple[str, int]]:
    handler = type("Handler", (StaticHandler,), {"root": root.resolve()})
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as server:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        try:
            yield server.server_address
        finally:
            server.shutdown()


def get(address: tuple[str, int], target: str, **headers: str) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one GET; header names use _ for - (If_None_Match)."""
    conn = http.client.HTTPConnection(*address, timeout=5)
    try:
        conn.request("GET", target, headers={k.replace("_", "-"): v for k, v in headers.items()})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@contextmanager
def site() -> Iterator[Path]:
    """A temp dir with a 1 MiB file (fixed content and mtime), and a secret beside it."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp, "public")
        root.mkdir()
        (Path(tmp) / "secret.txt").write_text("not for the web\n")
        video = root / "video.bin"
        video.write_bytes(bytes(range(256)) * 4096)
        os.utime(video, ns=(1_700_000_000_000_000_000,) * 2)  # a fixed mtime: a fixed ETag
        yield root


def main() -> None:
    with site() as root, static_server(root) as address:
        status, headers, body = get(address, "/video.bin")
        etag = headers["ETag"]
        print(f"{'GET /video.bin':35} -> {status}, {len(body):>7} bytes, ETag {etag}")
        requests = [
            ("If-None-Match: <that ETag>", "/video.bin", {"If_None_Match": etag}),
            ("Range: bytes=0-99", "/video.bin", {"Range": "bytes=0-99"}),
            ("Range: bytes=-100", "/video.bin", {"Range": "bytes=-100"}),
            ("Range: bytes=5000000-", "/video.bin", {"Range": "bytes=5000000-"}),
            ("Range: bytes=oops (malformed)", "/video.bin", {"Range": "bytes=oops"}),
            (
                'Range: bytes=0-99, If-Range: "old"',
                "/video.bin",
                {"Range": "bytes=0-99", "If_Range": '"old"'},
            ),
            ("GET /../secret.txt", "/../secret.txt", {}),
            ("GET /%2e%2e/secret.txt", "/%2e%2e/secret.txt", {}),
        ]
        for label, target, fields in requests:
            status, headers, reply = get(address, target, **fields)
            note = (
                f", Content-Range: {headers['Content-Range']}" if "Content-Range" in headers else ""
            )
            print(f"{label:35} -> {status}, {len(reply):>7} bytes{note}")
        revalidated = get(address, "/video.bin", If_None_Match=etag)[2]
        print(
            f"revalidating with If-None-Match saved {len(body) - len(revalidated)}"
            f" of {len(body)} body bytes"
        )


if __name__ == "__main__":
    main()
