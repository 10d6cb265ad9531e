"""Infrastructure as code run for real on this machine with pyinfra: the first run changes
what it manages, the second changes nothing, a hand edit is detected as drift by a plan and
repaired by the next run — while a shell script that appends is not idempotent at all.
Everything it manages lives in a temp dir.

Run: python snippets/operations/iac_idempotent.py
"""

from __future__ import annotations

import io
import os
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.operation import add_op
from pyinfra.api.operations import run_ops
from pyinfra.operations import files, server

CONFIG = "port = 8080\nworkers = 4\n"


# --8<-- [start:desired]
def desired(state: State, root: Path) -> dict[str, dict]:
    """The state we want, declared: each operation says what should be true, and pyinfra
    compares it with what it finds (its facts) to decide whether anything must change."""
    app = root / "app"
    return {
        "app directory": add_op(state, files.directory, path=str(app), mode="750"),
        "config file": add_op(
            state, files.put, src=io.StringIO(CONFIG), dest=str(app / "app.conf"), mode="640"
        ),
        "limits line": add_op(
            state, files.line, path=str(app / "limits.conf"), line="^nofile 65536$"
        ),  # anchored: pyinfra matches `line` as a regex, and unanchored "# nofile 65536" matches
        "limits mode": add_op(state, files.file, path=str(app / "limits.conf"), mode="600"),
    }


def appended(state: State, root: Path) -> dict[str, dict]:
    """The imperative way, for contrast: a command that appends every time it runs."""
    app = shlex.quote(str(root / "app"))
    command = f"mkdir -p {app} && echo 'nofile 65536' >> {app}/limits.conf"
    return {"append limits": add_op(state, server.shell, commands=[command])}


# --8<-- [end:desired]


# --8<-- [start:run]
@dataclass(frozen=True)
class Outcome:
    changed: list[str]  # the operations that changed something (or would, in a plan)


def session() -> tuple[State, object]:
    inventory = Inventory((["@local"], {}))  # this machine, without SSH
    state = State(inventory, Config())
    connect_all(state)
    return state, inventory.get_host("@local")


def apply(declare, root: Path) -> Outcome:  # noqa: ANN001 (desired or appended)
    """Run the operations: like `pyinfra @local deploy.py`."""
    state, host = session()
    ops = declare(state, root)
    run_ops(state)
    return Outcome([name for name, op in ops.items() if op[host].did_change()])


def plan(declare, root: Path) -> Outcome:  # noqa: ANN001
    """Only compare: what a run would change (like `--dry`, `terraform plan`)."""
    state, host = session()
    ops = declare(state, root)
    return Outcome([name for name, op in ops.items() if op[host].will_change])


# --8<-- [end:run]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="iac-") as tmp:
        root = Path(tmp)
        first, second = apply(desired, root), apply(desired, root)
        print(f"first run:  {len(first.changed)} of 4 operations changed something")
        print(f"second run: {len(second.changed)} changed (nothing to do: idempotent)")
        # Drift: someone edits the config by hand and loosens a file's mode
        (root / "app" / "app.conf").write_text(CONFIG + "workers = 16\n")
        os.chmod(root / "app" / "limits.conf", 0o666)
        drift = plan(desired, root)
        print(f"after a hand edit, the plan finds drift in: {', '.join(drift.changed)}")
        repaired = apply(desired, root)
        print(f"the next run repairs {len(repaired.changed)}: {', '.join(repaired.changed)};"
              f" then the plan finds {len(plan(desired, root).changed)}")  # fmt: skip
        print(f"config is back to {(root / 'app' / 'app.conf').read_text().splitlines()}")
    with tempfile.TemporaryDirectory(prefix="iac-") as tmp:
        root = Path(tmp)
        runs = [apply(appended, root) for _ in range(2)]
        lines = (root / "app" / "limits.conf").read_text().splitlines()
        print(f"a shell append, run twice: changed {sum(len(r.changed) for r in runs)} times,"
              f" the file has {len(lines)} copies of the line")  # fmt: skip


if __name__ == "__main__":
    main()
