"""Known-vulnerable versions found offline: a lock checked against advisories in OSV format
(two real PyPI records shipped beside this file), with a matcher written here from the OSV
schema's evaluation algorithm and PEP 440 ordering from `packaging`.

Run: python snippets/security/deps_osv_check.py
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ADVISORIES = Path(__file__).with_name("deps_advisories.json")
EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")


class AdvisoryError(ValueError):
    """An advisory file that does not follow the OSV schema: says which record and field."""


# --8<-- [start:load]
@dataclass(frozen=True)
class Range:
    events: tuple[tuple[str, str], ...]  # (kind, version), in the record's order


@dataclass(frozen=True)
class Affected:
    advisory: str
    aliases: tuple[str, ...]
    package: str  # normalized (PEP 503), as the OSV schema requires for PyPI
    ranges: tuple[Range, ...]  # the ECOSYSTEM ranges; GIT ranges need the repository
    versions: tuple[str, ...]  # as listed; a non-PEP 440 entry matches only its own text


def pep440(value: object, where: str) -> Version:
    try:
        return Version(str(value))
    except InvalidVersion:
        raise AdvisoryError(f"{where}: {value!r} is not a PEP 440 version") from None


def listed(value: object, where: str, of: type) -> list:
    """A JSON list whose items are all `of` (absent: empty), or an AdvisoryError."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, of) for item in value):
        kind = "objects" if of is dict else "strings"
        raise AdvisoryError(f"{where}: a list of {kind}; got {value!r}"[:200])
    return value


def parse_record(record: object, where: str) -> list[Affected]:
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        raise AdvisoryError(f"{where}: a record is an object with a string 'id'")
    where = record["id"]
    if "modified" not in record:
        raise AdvisoryError(f"{where}: 'modified' is required")
    out = []
    for i, affected in enumerate(listed(record.get("affected"), f"{where}: affected", dict)):
        at = f"{where}: affected[{i}]"
        package = affected.get("package")
        if not isinstance(package, dict) or not {"ecosystem", "name"} <= package.keys():
            raise AdvisoryError(f"{at}.package needs 'ecosystem' and 'name'")
        if package["ecosystem"] != "PyPI":
            continue  # another ecosystem's names and versions mean other things
        ranges = []
        for j, rng in enumerate(listed(affected.get("ranges"), f"{at}.ranges", dict)):
            if rng.get("type") not in ("ECOSYSTEM", "SEMVER", "GIT"):
                raise AdvisoryError(f"{at}.ranges[{j}].type: {rng.get('type')!r} is not defined")
            if rng["type"] == "SEMVER":  # SemVer order is not PEP 440's: refuse, not skip
                raise AdvisoryError(f"{at}.ranges[{j}]: a SEMVER range is not evaluated for PyPI")
            if rng["type"] == "GIT":
                continue  # commits, not versions: needs the repository
            events = []
            for k, event in enumerate(listed(rng.get("events"), f"{at}.ranges[{j}].events", dict)):
                kinds = sorted(event) if isinstance(event, dict) else []
                if len(kinds) != 1 or kinds[0] not in EVENT_KINDS:
                    raise AdvisoryError(
                        f"{at}.ranges[{j}].events[{k}]: an event has exactly one of "
                        f"{', '.join(EVENT_KINDS)}; got {kinds or event!r}"
                    )
                kind, value = kinds[0], event[kinds[0]]
                if not (kind == "introduced" and value == "0") and not (
                    kind == "limit" and value == "*"
                ):
                    pep440(value, f"{at}.ranges[{j}].events[{k}].{kind}")
                events.append((kind, value))
            if not any(kind == "introduced" for kind, _ in events):
                raise AdvisoryError(f"{at}.ranges[{j}]: needs at least one 'introduced' event")
            if {"fixed", "last_affected"} <= {kind for kind, _ in events}:
                raise AdvisoryError(f"{at}.ranges[{j}]: 'fixed' and 'last_affected' together")
            ranges.append(Range(tuple(events)))
        versions = tuple(listed(affected.get("versions"), f"{at}.versions", str))
        name = canonicalize_name(package["name"])
        aliases = tuple(record.get("aliases", []))
        out.append(Affected(where, aliases, name, tuple(ranges), versions))
    return out


def parse(text: str, source: str) -> list[Affected]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise AdvisoryError(f"{source}: not JSON: {error}") from None
    records = data if isinstance(data, list) else [data]  # a list of records, or one
    return [a for n, r in enumerate(records) for a in parse_record(r, f"{source}[{n}]")]


def load(path: Path = ADVISORIES) -> list[Affected]:
    return parse(path.read_text(encoding="utf-8"), path.name)


# --8<-- [end:load]


# --8<-- [start:match]
def key(event: tuple[str, str]) -> tuple[int, Version, int]:
    """Sort key for an event: by version ("0" before every version, "*" after); at the
    same version, introduced before the others, so the result does not depend on the
    record's order: introduced 1.0 + fixed 1.0 is empty, + last_affected 1.0 is just 1.0."""
    kind, value = event
    tie = 0 if kind == "introduced" else 1
    if value == "0":
        return (0, Version("0"), tie)
    return (2, Version("0"), tie) if value == "*" else (1, Version(value), tie)


def in_range(v: Version, rng: Range) -> bool:
    """The OSV schema's evaluation algorithm (IncludedInRanges, BeforeLimits), with PEP 440
    as the ECOSYSTEM ordering for PyPI."""
    limits = [value for kind, value in rng.events if kind == "limit"]
    if limits and not any(value == "*" or v < Version(value) for value in limits):
        return False  # at or beyond every limit
    vulnerable = False
    for kind, value in sorted(rng.events, key=key):
        if kind == "introduced" and (value == "0" or v >= Version(value)):
            vulnerable = True
        elif kind == "fixed" and v >= Version(value):  # noqa: SIM114 (the schema's pseudocode)
            vulnerable = False
        elif kind == "last_affected" and v > Version(value):
            vulnerable = False
    return vulnerable


def same(listed: str, v: Version) -> bool:
    """A `versions` entry equals v by PEP 440; an entry that is not PEP 440 (old PyPI
    releases such as "0.1dev-r1234") can only be equal as text."""
    try:
        return Version(listed) == v
    except InvalidVersion:
        return listed == str(v)


def matches(name: str, version: str, advisories: list[Affected]) -> list[tuple[Affected, str]]:
    """Each advisory that affects name==version, and how: 'range', 'versions' or both."""
    v, name = Version(version), canonicalize_name(name)
    found = []
    for a in advisories:
        if a.package != name:
            continue
        how = [h for h, hit in [
            ("range", any(in_range(v, r) for r in a.ranges)),
            ("versions", any(same(x, v) for x in a.versions)),  # PEP 440: 2.0 == 2.0.0
        ] if hit]  # fmt: skip
        if how:
            found.append((a, "+".join(how)))
    return found


def pins(lock: str) -> list[tuple[str, str]]:
    """(name, version) for each pin of a requirements-style lock, as `uv pip compile` and
    pip-compile write it: lines continued with a backslash joined, comments and `--hash`
    options dropped, each requirement parsed by `packaging` (extras and markers allowed,
    and one name may be pinned twice under two markers). Anything but an exact pin is
    refused: a line skipped would be a silent "no match"."""
    out = []
    for line in re.sub(r"\\\n", " ", lock).splitlines():  # "\\\n": backslash, newline
        line = re.sub(r"(^|\s)#.*", "", line).strip()  # a comment: "#" after a space
        if not line:
            continue
        if line.startswith("-"):  # an option line
            if re.match(r"(-[erc]|--editable|--requirement|--constraint)\b", line):
                raise ValueError(f"not an exact pin (name==version): {line!r}")
            continue  # a global option such as --index-url
        text = re.split(r"\s--?[a-zA-Z]", line)[0]  # the requirement, before its --hash
        try:
            requirement = Requirement(text)
        except InvalidRequirement as error:
            raise ValueError(f"not an exact pin (name==version): {line!r}: {error}") from None
        specs = list(requirement.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            raise ValueError(f"not an exact pin (name==version): {line!r}")
        pin = (canonicalize_name(requirement.name), str(Version(specs[0].version)))
        if pin not in out:
            out.append(pin)
    return out


# --8<-- [end:match]


# --8<-- [start:run]
OLD_LOCK = """\
PyJWT==2.3.0
requests==2.4.0
h11==0.16.0
"""
PATCHED_LOCK = """\
PyJWT==2.4.0
requests==2.31.0
h11==0.16.0
"""


# Two events in one object: the schema allows exactly one per object.
BROKEN = """[{"id": "EXAMPLE-1", "modified": "2024-01-01T00:00:00Z", "affected": [{
  "package": {"ecosystem": "PyPI", "name": "demo"},
  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0", "fixed": "2.0"}]}]}]}]"""


def report(lock: str, advisories: list[Affected]) -> list[str]:
    lines = []
    for name, version in pins(lock):
        found = matches(name, version, advisories)
        for a, how in found:
            fixed = [value for r in a.ranges for kind, value in r.events if kind == "fixed"]
            lines.append(
                f"{name} {version}: {a.advisory} ({', '.join(a.aliases)}), matched by {how},"
                f" fixed in {', '.join(fixed) or '-'}"
            )
        if not found:
            lines.append(f"{name} {version}: no match in these advisories")
    return lines


def string_order_in_range(version: str, introduced: str, fixed: str) -> bool:
    """The bug a matcher written with plain string comparison has."""
    return introduced <= version < fixed


# --8<-- [end:run]


def main() -> None:
    advisories = load()
    print(f"{len(advisories)} advisories loaded: {', '.join(a.advisory for a in advisories)}")
    for title, lock in [("old lock", OLD_LOCK), ("patched lock", PATCHED_LOCK)]:
        print(f"{title}:")
        for line in report(lock, advisories):
            print(f"  {line}")
    requests = next(a for a in advisories if a.package == "requests")
    listed = requests.versions  # the 66 versions the record itself lists as affected
    pep = sum(in_range(Version(v), requests.ranges[0]) for v in listed)
    text = sum(string_order_in_range(v, "2.3.0", "2.31.0") for v in listed)
    print(
        f"PYSEC-2023-74's {len(listed)} listed versions, checked against its range [2.3.0, 2.31.0):"
    )
    print(f"  in range by PEP 440 order: {pep}")
    print(f"  in range by string order:  {text} (2.4.0 > 2.31.0 and 2.10.0 < 2.3.0 as text)")
    try:
        parse(BROKEN, "broken.json")
    except AdvisoryError as error:
        print(f"a malformed advisory: AdvisoryError: {error}")


if __name__ == "__main__":
    main()
