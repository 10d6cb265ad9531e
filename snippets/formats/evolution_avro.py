"""Avro schema resolution run, not described: every change read by new and old readers from
new and old writers with fastavro, giving the BACKWARD / FORWARD / FULL matrix; and what the
wrong writer schema does.

Run: python snippets/formats/evolution_avro.py
"""

from __future__ import annotations

import io
from typing import Any

import fastavro


def user(*fields: dict[str, Any]) -> dict[str, Any]:
    return fastavro.parse_schema({"type": "record", "name": "User", "fields": list(fields)})


ID = {"name": "id", "type": "int"}
NAME = {"name": "name", "type": "string"}

# --8<-- [start:changes]
# (change, old schema, new schema, what Confluent's compatibility table and the Avro
# specification's resolution rules predict)
CHANGES = [
    ("add a field with a default", user(ID, NAME),
     user(ID, NAME, {"name": "email", "type": "string", "default": ""}), "FULL"),
    ("add a field, no default", user(ID, NAME),
     user(ID, NAME, {"name": "email", "type": "string"}), "FORWARD"),
    ("remove a field that had a default",
     user(ID, NAME, {"name": "email", "type": "string", "default": ""}), user(ID, NAME), "FULL"),
    ("remove a field, no default",
     user(ID, NAME, {"name": "email", "type": "string"}), user(ID, NAME), "BACKWARD"),
    ("rename with an alias", user(ID, NAME),
     user(ID, {"name": "full_name", "type": "string", "aliases": ["name"]}), "BACKWARD"),
    ("rename, no alias", user(ID, NAME),
     user(ID, {"name": "full_name", "type": "string"}), "NONE"),
    ("widen id from int to long", user(ID, NAME),
     user({"name": "id", "type": "long"}, NAME), "BACKWARD"),
]  # fmt: skip
# --8<-- [end:changes]


# --8<-- [start:resolve]
def write(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    """Avro binary with no schema attached (what a message on a topic carries)."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, record)
    return out.getvalue()


def read(data: bytes, writer: dict[str, Any], reader: dict[str, Any]) -> dict[str, Any]:
    """Decode with the writer's schema, resolved against the reader's (Avro spec, "Schema
    Resolution")."""
    return fastavro.schemaless_reader(io.BytesIO(data), writer, reader)


def sample(schema: dict[str, Any]) -> dict[str, Any]:
    values = {"id": 7, "name": "ada", "full_name": "ada", "email": "ada@example.org"}
    return {f["name"]: values[f["name"]] for f in schema["fields"]}


def can_read(writer: dict[str, Any], reader: dict[str, Any]) -> tuple[bool, str]:
    """Run it: (does the reader decode what the writer wrote, what it got or why not)."""
    try:
        return True, str(read(write(writer, sample(writer)), writer, reader))
    except Exception as error:  # fastavro raises SchemaResolutionError, among others
        return False, f"{type(error).__name__}: {error}"


def verdict(backward: bool, forward: bool) -> str:
    """BACKWARD: the new schema reads old data. FORWARD: the old schema reads new data."""
    return {(True, True): "FULL", (True, False): "BACKWARD", (False, True): "FORWARD"}.get(
        (backward, forward), "NONE"
    )


# --8<-- [end:resolve]


# --8<-- [start:wrong]
def wrong_writer_schema(id: int) -> str:
    """Bytes written as {id, name} decoded as if the writer had written {name, id}."""
    written = user(ID, NAME)
    assumed = user(NAME, ID)
    data = write(written, {"id": id, "name": "ada"})
    try:
        return f"{data.hex(' ')} -> {read(data, assumed, assumed)}"
    except Exception as error:
        return f"{data.hex(' ')} -> {type(error).__name__}: {error}"


# --8<-- [end:wrong]


def container_file_carries_its_schema() -> dict[str, Any]:
    """An Avro object container file stores the writer's schema in its header, so a reader
    needs only its own schema."""
    old, new = CHANGES[0][1], CHANGES[0][2]
    out = io.BytesIO()
    fastavro.writer(out, old, [sample(old)])
    out.seek(0)
    return next(iter(fastavro.reader(out, reader_schema=new)))


def main() -> None:
    print(f"{'change':<34} {'new reads old':<14} {'old reads new':<14} {'run':<9} predicted")
    for change, old, new, predicted in CHANGES:
        backward, _ = can_read(old, new)
        forward, _ = can_read(new, old)
        ran = verdict(backward, forward)
        yes = {True: "yes", False: "no"}
        print(f"{change:<34} {yes[backward]:<14} {yes[forward]:<14} {ran:<9} {predicted}")

    print("\nwhy the failures fail:")
    for change, old, new, _ in CHANGES:
        for who, writer, reader in (("new reads old", old, new), ("old reads new", new, old)):
            ok, detail = can_read(writer, reader)
            if not ok:
                print(f"  {change}, {who}: {detail}")
    print(f"\nrename with an alias, new reads old: {can_read(CHANGES[4][1], CHANGES[4][2])[1]}")

    print("\nthe wrong writer schema ({id, name} written, read as {name, id}):")
    for id in (3, 7):
        print(f"  id={id}: {wrong_writer_schema(id)}")
    read_back = container_file_carries_its_schema()
    print(f"\na container file, read with only the new schema: {read_back}")


if __name__ == "__main__":
    main()
