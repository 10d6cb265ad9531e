"""Secrets come from the environment or a file, never from code, and never reach a log:
a Secret type whose repr is redacted, a loader that refuses a file others can read, and a
logging filter on the handler that redacts known secret values and URL passwords — with
the same log lines written without it (the control) leaking them.

Run: python snippets/security/privilege_secrets.py
"""

from __future__ import annotations

import io
import logging
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


# --8<-- [start:secret]
class Secret:
    """A value that does not print itself: repr(), str() and f-strings show ***."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:  # the one, greppable place where the value comes out
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def load_secret(name: str, environ: Mapping[str, str] = os.environ) -> Secret:
    """NAME_FILE (a path to a file only its owner may read, e.g. a Docker or Kubernetes
    secret mounted with mode 0400: their defaults, 0444 and 0644, are refused) or else
    NAME. No default: a missing secret stops the program instead of running with one
    written in the code."""
    if path := environ.get(f"{name}_FILE"):
        with open(path, encoding="utf-8") as file:  # check the file we read, not the path
            mode = os.fstat(file.fileno()).st_mode  # (it could be swapped in between)
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise PermissionError(
                    f"{path} is open to other users ({stat.filemode(mode)}): chmod 600"
                )
            return Secret(file.read().rstrip("\n"))
    if name in environ:
        return Secret(environ[name])
    raise LookupError(f"set {name} or {name}_FILE")  # the message names it, never a value


@dataclass
class Config:
    database_host: str
    api_key: Secret


# --8<-- [end:secret]


# --8<-- [start:redact]
URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]+:)[^@\s]+(@)")


class Redact(logging.Filter):
    """Replace known secret values, and any password in a URL, in a record's message and
    traceback. Attach it to the handler: a logger's filters skip its children's records."""

    def __init__(self, *known: Secret) -> None:
        super().__init__()
        self.known = [s.reveal() for s in known]

    def redact(self, text: str) -> str:
        for value in self.known:
            text = text.replace(value, "***")
        return URL_PASSWORD.sub(r"\1***\2", text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), None
        if record.exc_info:  # the traceback is formatted later: do it now, redacted
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


# --8<-- [end:redact]


# --8<-- [start:app]
def application(log: logging.Logger, config: Config, database_url: str) -> None:
    """Three common leaks: a value logged by mistake, a URL with its password, a traceback."""
    log.info("config loaded: %r", config)
    log.info("calling the API with key %s", config.api_key.reveal())
    log.warning("database at %s is slow", database_url)
    try:
        raise ConnectionError(f"could not connect to {database_url}")
    except ConnectionError:
        log.exception("giving up")


def logs(redact: Redact | None, config: Config, database_url: str, where: str = "handler") -> str:
    """Run the application with a child logger, the filter on the handler (or on the
    parent logger, or nowhere); return what the handler wrote."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    parent = logging.getLogger("app")
    parent.setLevel(logging.INFO)
    parent.propagate = False
    parent.addHandler(handler)
    holder = handler if where == "handler" else parent
    if redact is not None:
        holder.addFilter(redact)
    try:
        application(parent.getChild("api"), config, database_url)
    finally:
        parent.removeHandler(handler)
        if redact is not None:
            holder.removeFilter(redact)
    return out.getvalue()


# --8<-- [end:app]


def main() -> None:
    api_key = secrets.token_urlsafe(24)  # made at run time: nothing secret is committed
    db_password = secrets.token_urlsafe(12)
    database_url = f"postgresql://app:{db_password}@db.internal/orders"
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "api_key"
        key_file.write_text(api_key + "\n", encoding="utf-8")
        print("loading API_KEY:")
        for mode in (0o600, 0o644):
            key_file.chmod(mode)
            try:
                loaded = load_secret("API_KEY", {"API_KEY_FILE": str(key_file)})
                same = loaded.reveal() == api_key
                print(f"  from a {oct(mode)} file  -> {loaded!r}, value matches: {same}")
            except PermissionError as e:
                print(
                    f"  from a {oct(mode)} file  -> PermissionError: {str(e).replace(tmp, '$TMP')}"
                )
        print(f"  from the environment -> {load_secret('API_KEY', {'API_KEY': api_key})!r}")
        try:
            load_secret("API_KEY", {})
        except LookupError as e:
            print(f"  from nowhere         -> LookupError: {e}")

    config = Config("db.internal", Secret(api_key))
    for name, redact, where in [
        ("without a filter (the control)", None, "handler"),
        ("with Redact on the handler", Redact(config.api_key, Secret(db_password)), "handler"),
    ]:
        text = logs(redact, config, database_url, where)
        leaked = api_key in text or db_password in text
        print(f"\nlog {name}: a secret appears: {leaked}")
        shown = text.replace(api_key, "<API KEY>").replace(db_password, "<DB PASSWORD>")
        print(
            "\n".join("  " + line for line in shown.splitlines() if not line.startswith("  File"))
        )


if __name__ == "__main__":
    main()
