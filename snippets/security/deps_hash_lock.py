"""A lock with hashes: the installer refuses a wheel whose content differs by one byte from
the locked one and installs the original, offline (--no-index), from wheels built here by
hand. The page's installer is uv (`uv pip install`); its test runs pip on the same wheels.

Run: python snippets/security/deps_hash_lock.py
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

NAME, VERSION = "tinypkg", "1.0.0"
WHEEL = f"{NAME}-{VERSION}-py3-none-any.whl"  # {name}-{version}-{python}-{abi}-{platform}.whl
MODULE = 'GREETING = "hello from the wheel we built"\n'


# --8<-- [start:wheel]
def record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def build_wheel(folder: Path, module: str = MODULE, name: str = NAME) -> Path:
    """A wheel is a zip archive (the binary distribution format, PEP 427): the package's
    files plus a .dist-info folder with METADATA, WHEEL and RECORD (each file's hash).
    Fixed timestamps make the bytes, and so the hash, the same on every run."""
    info = f"{name}-{VERSION}.dist-info"
    files = {
        f"{name}/__init__.py": module.encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {VERSION}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: by-hand\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = "".join(f"{p},{record_hash(d)},{len(d)}\n" for p, d in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    path = folder / WHEEL.replace(NAME, name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:  # stored: bytes visible
        for name, data in files.items():
            entry = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            entry.create_system, entry.external_attr = 3, 0o644 << 16  # same bytes on any OS
            archive.writestr(entry, data)
    return path


# --8<-- [end:wheel]


# --8<-- [start:install]
def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def uv() -> str:
    """uv, the project's installer: every `make` target puts it in .venv."""
    here = [Path(sys.executable).with_name(n) for n in ("uv", "uv.exe")]
    found = next((str(p) for p in here if p.exists()), None) or shutil.which("uv")
    if found is None:
        sys.exit("uv not found next to this Python: run `make serve` once, or pip install uv")
    return found


def installer(tool: str) -> list[str]:
    if tool == "pip":
        return [sys.executable, "-m", "pip", "--isolated", "install", "--no-cache-dir"]
    return [uv(), "pip", "install", "--no-config", "--offline", "--no-cache"]


def compile_lock(wheelhouse: Path, requirements: str) -> str:
    """The lock `uv pip compile --generate-hashes` writes for `requirements`, resolved
    offline against `wheelhouse` (no header or comments, so it is the same on every run)."""
    command = [uv(), "pip", "compile", "-", "--no-config", "--offline", "--no-cache"]
    command += ["--no-index", "--find-links", str(wheelhouse), "--python", sys.executable]
    command += ["--generate-hashes", "--no-header", "--no-annotate", "--quiet"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    done = subprocess.run(
        command, input=requirements, capture_output=True, text=True, env=env, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"uv pip compile failed: {done.stderr.strip()}")
    return done.stdout


def install(
    wheelhouse: Path, lock: str, target: Path, tool: str = "uv", require_hashes: bool = True
) -> tuple[int, str]:
    """Install the lock offline: --no-index (no PyPI), wheels only from `wheelhouse`, into
    `target`. Config files and UV_*/PIP_* variables are ignored, so what runs is exactly
    this command line. Returns the exit status and the output, temp paths shortened."""
    lockfile = target.with_suffix(".txt")
    lockfile.write_text(lock)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    command = [*installer(tool), "--no-index", "--find-links", str(wheelhouse)]
    command += ["--python", sys.executable] if tool == "uv" else []
    command += ["--require-hashes"] if require_hashes else []
    command += ["--target", str(target), "-r", str(lockfile)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    output = (done.stdout + done.stderr).replace(str(target.parent), "$TMP")
    return done.returncode, output


def greeting(target: Path) -> str:
    """What the installed module says (read from the target folder, not imported)."""
    return (target / NAME / "__init__.py").read_text().split('"')[1]


# --8<-- [end:install]


def shown(output: str) -> list[str]:
    """The installer's lines that say what happened (not which interpreter it used)."""
    skip = ("Using CPython", "Using Python", "Resolved", "Prepared", "Installed", "Audited")
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    return [line for line in lines if not line.lstrip().startswith(skip)]


# --8<-- [start:run]
def run() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        good, bad = root / "wheels-good", root / "wheels-bad"
        good.mkdir(), bad.mkdir()
        build_wheel(good)
        lock = compile_lock(good, f"{NAME}=={VERSION}\n")  # the real tool's lock
        out["the lock (uv pip compile --generate-hashes)"] = lock.splitlines()
        # The attacker's wheel: one byte of the module changed ("hello" -> "jello"), rebuilt
        # so that it is a valid archive with the same name and version.
        build_wheel(bad, MODULE.replace("hello", "jello"))
        status, output = install(bad, lock, root / "t1")
        out["changed wheel, lock with hash"] = [f"exit status {status}", *shown(output)]
        status, output = install(good, lock, root / "t2")
        said = greeting(root / "t2") if status == 0 else "-"
        out["original wheel, lock with hash"] = [f"exit status {status}", *shown(output), said]
    return out


# --8<-- [end:run]


def main() -> None:
    for name, lines in run().items():
        print(f"{name}:")
        for line in lines:
            print(f"  {line}")


if __name__ == "__main__":
    main()
