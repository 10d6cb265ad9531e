"""Deserializing untrusted bytes: pickle and yaml.load run the sender's code (a payload
writes a marker file in a temp dir); a restricted unpickler, yaml.safe_load and a JSON
Schema at the boundary refuse it.

Run: python snippets/formats/deserialize_untrusted.py
"""

from __future__ import annotations

import io
import json
import pickle
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import yaml


# --8<-- [start:pickle]
class Payload:
    """What an attacker pickles: unpickling calls exec(code), in the receiver's process."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return exec, (self.code,)


def pickle_payload(marker: Path) -> bytes:
    return pickle.dumps(Payload(f"open({str(marker)!r}, 'w').write('ran')"))


class RestrictedUnpickler(pickle.Unpickler):
    """Python docs, pickle, "Restricting Globals": only the classes we name may load."""

    ALLOWED = {("builtins", "dict"), ("builtins", "list"), ("builtins", "set")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is forbidden")
        return super().find_class(module, name)


def restricted_loads(data: bytes) -> Any:
    return RestrictedUnpickler(io.BytesIO(data)).load()


# --8<-- [end:pickle]


# --8<-- [start:yaml]
def yaml_payload(marker: Path) -> str:
    return f"!!python/object/apply:builtins.exec [\"open({str(marker)!r}, 'w').write('ran')\"]"


YAML_LOADERS = {
    "yaml.load(UnsafeLoader)": lambda text: yaml.load(text, Loader=yaml.UnsafeLoader),
    "yaml.load(FullLoader)": lambda text: yaml.load(text, Loader=yaml.FullLoader),
    "yaml.safe_load": yaml.safe_load,
    "yaml.load, no Loader": lambda text: yaml.load(text),  # noqa: S506 - shown refusing
}
# --8<-- [end:yaml]

# --8<-- [start:schema]
ORDER = {  # JSON Schema (draft 2020-12) for what an endpoint accepts, and nothing else
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "quantity": {"type": "integer", "minimum": 1, "maximum": 100},
        "email": {"type": "string", "maxLength": 254, "pattern": "^[^@\\s]+@[^@\\s]+$"},
    },
    "required": ["id", "quantity", "email"],
    "additionalProperties": False,
}
VALIDATOR = jsonschema.Draft202012Validator(ORDER)


def problems(document: str) -> list[str]:
    """Everything wrong with a request body, or [] if it may pass the boundary."""
    try:
        value = json.loads(document)
    except ValueError as error:
        return [f"not JSON: {error}"]
    return sorted(
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:70]}"
        for e in VALIDATOR.iter_errors(value)
    )


# --8<-- [end:schema]

REQUESTS = {
    "valid": '{"id": 7, "quantity": 2, "email": "ada@example.org"}',
    "extra field": '{"id": 7, "quantity": 2, "email": "ada@example.org", "is_admin": true}',
    "wrong types": '{"id": "7", "quantity": 2.5, "email": "ada@example.org"}',
    "out of range": '{"id": 0, "quantity": 1000000, "email": "nobody"}',
    "missing field": '{"id": 7}',
}


def attempt(load: Any, data: Any, marker: Path) -> str:
    """Run a loader on a payload: did it raise, and did the marker file appear?"""
    marker.unlink(missing_ok=True)
    try:
        load(data)
        result = "loaded"
    except Exception as error:  # each loader raises its own type: show which
        result = f"{type(error).__name__}: {' '.join(str(error).split())[:100]}"
    return f"{result}; marker file {'WRITTEN' if marker.exists() else 'absent'}"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "marker"
        print("pickle, a payload from the network:")
        data = pickle_payload(marker)
        print(f"  the bytes name builtins.exec, not the attacker's class Payload:"
              f" {b'exec' in data and b'Payload' not in data}")  # fmt: skip
        plain = pickle.dumps({"id": 7, "tags": ["a"]})
        for name, load, payload in (
            ("pickle.loads", pickle.loads, data),
            ("restricted_loads", restricted_loads, data),
            ("pickle.loads, a plain dict", pickle.loads, plain),
            ("restricted_loads, a plain dict", restricted_loads, plain),
        ):
            print(f"  {name}\n      {attempt(load, payload, marker)}")

        print(f"\nYAML, PyYAML {yaml.__version__}, the payload {yaml_payload(Path('M'))!r}:")
        for name, load in YAML_LOADERS.items():
            print(f"  {name}\n      {attempt(load, yaml_payload(marker), marker)}")

    print("\nJSON Schema at the boundary (jsonschema, draft 2020-12):")
    for name, body in REQUESTS.items():
        found = problems(body)
        print(f"  {name:<14} {'accepted' if not found else 'rejected'}")
        for problem in found:
            print(f"      {problem}")


if __name__ == "__main__":
    main()
