"""Protobuf schema evolution run, not described: an old reader keeps a new field it does not
know, a reused field number corrupts data silently, and `reserved` makes protoc refuse it.

Run: python snippets/formats/evolution_protobuf.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto
STRING, INT32 = F.TYPE_STRING, F.TYPE_INT32


def message_class(version: str, fields: list[tuple[int, str, int]]) -> Any:
    """message User { ... } for one version of the schema, built at run time (each version
    in its own pool, as two programs compiled from two .proto files would be)."""
    file = descriptor_pb2.FileDescriptorProto(name=f"user_{version}.proto", package=version)
    file.syntax = "proto3"
    message = file.message_type.add(name="User")
    for number, name, kind in fields:
        message.field.add(name=name, number=number, type=kind, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{version}.User"))


# --8<-- [start:versions]
V1 = [(1, "id", INT32), (2, "name", STRING)]
V2 = [*V1, (3, "email", STRING)]  # v2 adds a field
V3 = [*V1, (3, "phone", STRING)]  # v3 drops email and REUSES its number 3 for phone
# --8<-- [end:versions]


# --8<-- [start:unknown]
def old_reader_round_trip(discard_unknown: bool = False) -> tuple[str, bytes, str]:
    """A v2 writer, a v1 service that reads, edits and re-writes the message, a v2 reader.
    Returns (what v1 saw, the bytes v1 wrote, the email the v2 reader gets back)."""
    UserV1, UserV2 = message_class("v1", V1), message_class("v2", V2)
    sent = UserV2(id=7, name="ada", email="ada@example.org").SerializeToString()
    old = UserV1.FromString(sent)  # v1 knows nothing about field 3
    seen = str(old).replace("\n", " ").strip()
    old.name = "Ada"  # v1 changes a field it knows ...
    if discard_unknown:
        old.DiscardUnknownFields()
    rewritten = old.SerializeToString()  # ... and writes the message back
    return seen, rewritten, UserV2.FromString(rewritten).email


# --8<-- [end:unknown]


# --8<-- [start:reuse]
def reused_number() -> tuple[str, str]:
    """A record stored by v2 (email in field 3) read by v3 (phone in field 3)."""
    UserV2, UserV3 = message_class("v2", V2), message_class("v3", V3)
    stored = UserV2(id=7, name="ada", email="ada@example.org").SerializeToString()
    read = UserV3.FromString(stored)  # no error: same number, same wire type (LEN)
    return read.phone, str(read).replace("\n", " ").strip()


# --8<-- [end:reuse]


# --8<-- [start:reserved]
def protoc(source: str) -> tuple[int, str]:
    """Compile a .proto with the protoc inside grpcio-tools into a temp dir: (exit code,
    its error output)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "user.proto").write_text(source)
        run = subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp}", f"--python_out={tmp}",
             f"{tmp}/user.proto"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return run.returncode, run.stderr.replace(tmp + "/", "").strip()


RESERVED = """syntax = "proto3";
message User {
  reserved 3;
  reserved "email";
  int32 id = 1;
  string name = 2;
  string phone = %s;
}
"""
# --8<-- [end:reserved]


def main() -> None:
    seen, rewritten, email = old_reader_round_trip()
    print("1. a v2 message through a v1 service (reads, sets name, writes back):")
    print(f"   v1 sees:           {seen}")
    print(f"   v1 writes:         {rewritten.hex(' ')}")
    print(f"   v2 reads email:    {email!r}  (kept as an unknown field)")
    _, lost, email = old_reader_round_trip(discard_unknown=True)
    print(f"   with DiscardUnknownFields(): {lost.hex(' ')} -> email {email!r}")

    phone, shown = reused_number()
    print("\n2. field number 3 reused: a v2 record (email=3) read by v3 (phone=3):")
    print(f"   v3 reads:          {shown}")
    print(f"   phone == the old email: {phone == 'ada@example.org'}, and no error was raised")

    print("\n3. `reserved 3;` in the .proto, compiled by protoc:")
    for number in (3, 4):
        code, error = protoc(RESERVED % number)
        first = error.splitlines()[0] if error else "(compiled)"
        print(f"   phone = {number}: protoc exit {code}, {first}")


if __name__ == "__main__":
    main()
