"""Run a snippet with the servers it needs, or keep servers up for a study session.

    python -m services run protocols/tcp_nagle     # make run S=protocols/tcp_nagle
    python -m services up [postgresql redis …]     # make services [ONLY="postgresql"]

`run` reads the snippet's `Needs:` docstring line, starts each server it needs unless its
variable is already set (your own server wins), runs the snippet, and stops the servers.
`up` starts servers, prints the `export …` lines to paste into another terminal, and
stops them on Ctrl-C. Either way nothing is left running, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading

from services import MODULES, Missing, modules, provider_of, started
from services.snippets import ROOT, USAGE, listing, needs, resolve


def say(text: str) -> None:
    """The runner's own lines go to stderr, so a snippet's stdout stays what its page shows."""
    print(text, file=sys.stderr, flush=True)


def _stop_on_signals() -> None:
    """Ctrl-C, SIGTERM and SIGHUP (a closed terminal) all stop the servers. (SIGINT's
    handler is set even when the shell started us with SIGINT ignored, as `cmd &` does.)"""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def run(spec: str, args: list[str]) -> int:
    snippet = resolve(spec)
    if snippet is None:
        say(listing(spec))
        return USAGE
    wanted = needs(snippet)
    services = sorted({provider_of(v) for v in wanted if not os.environ.get(v)})
    _stop_on_signals()
    try:
        with started(services) as running:
            env = dict(os.environ)
            for service in running:
                env.update(service.env)
                shown = ", ".join(service.env)
                say(f"[make run] {service.description}: {shown} set for this run")
            for var in wanted:
                if var not in {k for s in running for k in s.env}:
                    say(f"[make run] using your {var}")
            child = subprocess.Popen(
                [sys.executable, str(snippet.relative_to(ROOT)), *args], cwd=ROOT, env=env
            )
            try:
                return child.wait()
            except KeyboardInterrupt:  # the snippet got the Ctrl-C too; let it finish first
                try:
                    child.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
                raise
    except Missing as missing:
        say(f"{snippet.relative_to(ROOT)} needs {', '.join(wanted)}. {missing}")
        say(f"Or set {', '.join(wanted)} to use your own.")
        return 69  # EX_UNAVAILABLE
    except KeyboardInterrupt:
        say("[make run] interrupted; servers stopped")
        return 130


def up(names: list[str]) -> int:
    # By default every server that runs on its own; not the binaries snippets start.
    names = names or [n for n, m in modules().items() if not getattr(m, "BINARY_ONLY", False)]
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        say(f"unknown service {unknown}; services: {' '.join(MODULES)}")
        return USAGE
    _stop_on_signals()
    try:
        with started(names) as running:
            say("Servers running (each on 127.0.0.1, its files in a temp dir):")
            for service in running:
                say(f"  {service.description}")
            say("\nPaste into the terminal where you run snippets:\n")
            for service in running:
                for var, value in service.env.items():
                    print(f"export {var}='{value}'", flush=True)
            say("\nCtrl-C here stops them all.")
            threading.Event().wait()
    except Missing as missing:
        say(str(missing))
        return 69
    except KeyboardInterrupt:
        say("\nstopped; nothing left running")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run a snippet with the servers it needs")
    run_parser.add_argument("snippet", nargs="?", default="")
    run_parser.add_argument("args", nargs=argparse.REMAINDER)
    up_parser = commands.add_parser("up", help="keep servers running; print export lines")
    up_parser.add_argument("names", nargs="*", help=f"any of: {' '.join(MODULES)}")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.snippet, args.args)
    return up(args.names)


if __name__ == "__main__":
    sys.exit(main())
