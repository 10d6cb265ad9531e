"""Terraform configuration checked offline: python-hcl2 parses the HCL (a syntax error is
reported with its line), and a few policy rules read the parsed resources the way checkov
or tfsec do — SSH open to the internet, an unencrypted or public database, a password
written into the code — on a risky configuration and on its fixed version.

Run: python snippets/operations/iac_terraform.py
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import hcl2
from lark.exceptions import UnexpectedInput

# --8<-- [start:config]
RISKY = """\
resource "aws_security_group" "web" {
  name = "web"
  ingress {
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_db_instance" "main" {
  engine              = "postgres"
  instance_class      = "db.t4g.micro"
  storage_encrypted   = false
  publicly_accessible = true
  password            = "hunter2"
}
"""

FIXED = """\
variable "admin_cidr" { type = string }

resource "aws_security_group" "web" {
  name = "web"
  ingress {
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = [var.admin_cidr]
  }
}

resource "aws_db_instance" "main" {
  engine                      = "postgres"
  instance_class              = "db.t4g.micro"
  storage_encrypted           = true
  publicly_accessible         = false
  manage_master_user_password = true
}
"""
# --8<-- [end:config]


def unquote(value: object) -> object:
    """python-hcl2 keeps a string literal's quotes ("\\"tcp\\""); expressions have none."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def resources(parsed: dict, kind: str) -> Iterator[tuple[str, dict]]:
    for block in parsed.get("resource", []):
        for rtype, named in block.items():
            if unquote(rtype) == kind:
                for name, body in named.items():
                    yield f"{kind}.{unquote(name)}", body


# --8<-- [start:policies]
OPEN = {"0.0.0.0/0", "::/0"}


def ssh_open_to_the_internet(parsed: dict) -> Iterator[str]:
    """An inline ingress rule reaching port 22 from anywhere (IPv4 or IPv6). Protocol "-1"
    is every protocol and port, whatever from_port/to_port say; a port from a variable
    cannot be checked offline, so it is reported too. (Standalone rule resources,
    aws_vpc_security_group_ingress_rule, are not read: a sketch, not a tool.)"""
    for name, body in resources(parsed, "aws_security_group"):
        for rule in body.get("ingress", []):
            cidrs = {unquote(c) for key in ("cidr_blocks", "ipv6_cidr_blocks")
                     for c in rule.get(key, [])} & OPEN  # fmt: skip
            low, high = rule.get("from_port", 0), rule.get("to_port", 0)
            to = ", ".join(sorted(cidrs))
            if not cidrs:
                continue
            if unquote(rule.get("protocol")) in ("-1", "all"):
                yield f"{name}: all traffic open to {to}"
            elif not (isinstance(low, int) and isinstance(high, int)):
                yield f"{name}: ports {low}-{high} unknown offline, open to {to}"
            elif low <= 22 <= high:
                yield f"{name}: port 22 open to {to}"


def database_not_encrypted(parsed: dict) -> Iterator[str]:
    for name, body in resources(parsed, "aws_db_instance"):
        if body.get("storage_encrypted") is not True:
            yield f"{name}: storage_encrypted is not true"


def database_public(parsed: dict) -> Iterator[str]:
    for name, body in resources(parsed, "aws_db_instance"):
        if body.get("publicly_accessible") is True:
            yield f"{name}: publicly_accessible = true"


def literal_password(parsed: dict) -> Iterator[str]:
    for name, body in resources(parsed, "aws_db_instance"):
        value = body.get("password")
        if isinstance(value, str) and value.startswith('"'):  # a literal, not var./data.
            yield f"{name}: password written in the code (it lands in state and in git)"


POLICIES: list[Callable[[dict], Iterator[str]]] = [
    ssh_open_to_the_internet, database_not_encrypted, database_public, literal_password,
]  # fmt: skip


def check(text: str) -> list[str]:
    """Parse, then run every policy; a syntax error is one finding, with its line."""
    try:
        parsed = hcl2.loads(text)
    except UnexpectedInput as error:
        return [f"syntax error at line {error.line}, column {error.column}"]
    return [problem for policy in POLICIES for problem in policy(parsed)]


# --8<-- [end:policies]


def main() -> None:
    broken = FIXED.replace("storage_encrypted           = true", "storage_encrypted =")
    for name, text in (("risky", RISKY), ("fixed", FIXED), ("a value left out", broken)):
        found = check(text)
        print(f"{name}: {len(found)} finding(s)")
        for line in found:
            print(f"  {line}")


if __name__ == "__main__":
    main()
