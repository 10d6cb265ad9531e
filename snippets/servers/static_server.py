"""A static file server with sendfile, ETag / If-None-Match (304), Range (206 / 416), and
path traversal refused.

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
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MAX_HEAD = 8192  # bytes of request line + headers before 431
REASONS = {
    200: "OK",
    206: "Partial Content",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    416: "Range Not Satisfiable",
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
    """A strong validator that changes when the file does (like NGINX: size and mtime)."""
    return f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'


def none_match(header: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: true when If-None-Match lists this ETag (weak comparison) or is *."""
    if header is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag.removeprefix("W/") in tags


# --8<-- [end:validators]


# --8<-- [start:range]
RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """RFC 9110 §14.2: (first, last) to send, None to send the whole file, or HttpError(416).

    A header we cannot parse, another unit, or several ranges: ignore it (allowed) and
    send 200 with everything. A well-formed range that starts past the end: 416."""
    match = RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # bytes=-N: the last N bytes
        if int(last) == 0:
            raise HttpError(416)
        return max(0, size - int(last)), size - 1
    if last and int(last) < int(first):
        return None  # invalid range-spec: ignore the header
    if int(first) >= size:
        raise HttpError(416)
    return int(first), min(int(last), size - 1) if last else size - 1


# --8<-- [end:range]


# --8<-- [start:handler]
class StaticHandler(socketserver.StreamRequestHandler):
    root: Path  # set by static_server()
    timeout = 2  # a client that sends nothing gets 408 after this many seconds

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
        lines, total = [], 0
        while (line := self.rfile.readline(MAX_HEAD + 1)) not in (b"\r\n", b"\n"):
            total += len(line)
            if not line:
                raise ConnectionError("client closed mid-request")
            if total > MAX_HEAD:
                raise HttpError(431)
            lines.append(line.decode("latin-1").rstrip("\r\n"))
        parts = lines[0].split(" ") if lines else []
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise HttpError(400)
        headers = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise HttpError(400)  # RFC 9112 §5.1: no space before the colon
            headers[name.lower()] = value.strip()
        return parts[0], parts[1], headers

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
            try:
                span = byte_range(headers.get("range"), stat.st_size)
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
        print(f"{'GET /video.bin':33} -> {status}, {len(body):>7} bytes, ETag {etag}")
        requests = [
            ("If-None-Match: <that ETag>", "/video.bin", {"If_None_Match": etag}),
            ("Range: bytes=0-99", "/video.bin", {"Range": "bytes=0-99"}),
            ("Range: bytes=-100", "/video.bin", {"Range": "bytes=-100"}),
            ("Range: bytes=5000000-", "/video.bin", {"Range": "bytes=5000000-"}),
            ("Range: bytes=oops (malformed)", "/video.bin", {"Range": "bytes=oops"}),
            ("GET /../secret.txt", "/../secret.txt", {}),
            ("GET /%2e%2e/secret.txt", "/%2e%2e/secret.txt", {}),
        ]
        for label, target, fields in requests:
            status, headers, reply = get(address, target, **fields)
            note = (
                f", Content-Range: {headers['Content-Range']}" if "Content-Range" in headers else ""
            )
            print(f"{label:33} -> {status}, {len(reply):>7} bytes{note}")
        revalidated = get(address, "/video.bin", If_None_Match=etag)[2]
        print(
            f"revalidating with If-None-Match saved {len(body) - len(revalidated)}"
            f" of {len(body)} body bytes"
        )


if __name__ == "__main__":
    main()
