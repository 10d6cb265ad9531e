"""Dependencies (docs/security/dependencies.md): a hash-checked lock refuses a changed wheel
(uv and pip, offline) and installs the original; without the hash the changed wheel goes
in; an OSV matcher against PEP 440 ordering, the schema's event rules and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.version import Version

from tests.conftest import ROOT, load_snippet

lock = load_snippet("security/deps_hash_lock")
osv = load_snippet("security/deps_osv_check")


@pytest.fixture
def wheels(tmp_path: Path) -> tuple[Path, Path, str]:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir(), bad.mkdir()
    digest = lock.sha256_file(lock.build_wheel(good))
    lock.build_wheel(bad, lock.MODULE.replace("hello", "jello"))
    return good, bad, f"{lock.NAME}=={lock.VERSION} --hash=sha256:{digest}\n"


def test_the_snippet_refuses_the_changed_wheel_and_installs_the_original():
    out = lock.run()
    refused, installed = out["changed wheel, lock with hash"], out["original wheel, lock with hash"]
    assert refused[0] == "exit status 1" and any("Hash mismatch" in x for x in refused)
    assert installed[0] == "exit status 0" and installed[-1] == "hello from the wheel we built"


@pytest.mark.parametrize("tool", ["uv", "pip"])
def test_each_installer_refuses_the_changed_wheel_and_installs_the_original(wheels, tmp_path, tool):
    good, bad, pinned = wheels
    status, output = lock.install(bad, pinned, tmp_path / "t1", tool)
    assert status != 0
    if tool == "pip":
        assert "THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE" in output
    else:
        assert "Hash mismatch" in output
    assert not (tmp_path / "t1" / lock.NAME).exists()
    status, output = lock.install(good, pinned, tmp_path / "t2", tool)
    assert status == 0, output
    assert lock.greeting(tmp_path / "t2") == "hello from the wheel we built"


def test_break_it_without_the_hash_the_changed_wheel_installs(wheels, tmp_path):
    """The counterfactual: the same changed wheel, the lock line without --hash and no
    --require-hashes: installed, and its code is the attacker's."""
    _, bad, pinned = wheels
    unhashed = pinned.split(" --hash")[0] + "\n"
    status, output = lock.install(bad, unhashed, tmp_path / "t", require_hashes=False)
    assert status == 0, output
    assert lock.greeting(tmp_path / "t") == "jello from the wheel we built"


def test_require_hashes_refuses_a_lock_line_without_a_hash(wheels, tmp_path):
    good, _, pinned = wheels
    status, output = lock.install(good, pinned.split(" --hash")[0] + "\n", tmp_path / "t")
    assert status != 0 and "must have a hash" in output


@pytest.mark.parametrize(("tool", "refused"), [("pip", True), ("uv", False)])
def test_one_hash_turns_on_hash_checking_in_pip_not_in_uv(wheels, tmp_path, tool, refused):
    """A lock with a hash on one line and none on the other, without --require-hashes: pip
    switches hash-checking mode on for the whole install ("as soon as any requirement has a
    --hash") and refuses the unhashed line; uv checks the hash that is there and installs
    the unhashed package unchecked. With uv, only --require-hashes makes every hash
    required (test_require_hashes_refuses_a_lock_line_without_a_hash)."""
    good, _, pinned = wheels
    lock.build_wheel(good, name="otherpkg")
    partly = pinned + f"otherpkg=={lock.VERSION}\n"
    status, output = lock.install(good, partly, tmp_path / "t", tool, require_hashes=False)
    if refused:
        assert status != 0 and "Hashes are required in --require-hashes mode" in output
        assert not (tmp_path / "t" / "otherpkg").exists()
    else:
        assert status == 0, output
        assert (tmp_path / "t" / "otherpkg" / "__init__.py").exists()


def test_a_flipped_byte_in_the_archive_is_caught_by_the_zip_crc_without_any_hash(wheels, tmp_path):
    """Why the page's attacker rebuilds the wheel: a raw byte flip breaks the entry's CRC-32,
    which any installer notices; a CRC is no defence, the attacker just recomputes it."""
    good, _, pinned = wheels
    wheel = good / lock.WHEEL
    wheel.write_bytes(wheel.read_bytes().replace(b"hello", b"jello"))
    unhashed = pinned.split(" --hash")[0] + "\n"
    status, output = lock.install(good, unhashed, tmp_path / "t", require_hashes=False)
    assert status != 0 and "CRC" in output


def test_the_lock_uv_writes_is_read_by_the_osv_checker(tmp_path):
    """The real `uv pip compile --generate-hashes` output: the pin on one line, each hash on
    a continuation line. The OSV checker's pins() must read exactly that."""
    lock.build_wheel(tmp_path)
    lock.build_wheel(tmp_path, name="otherpkg")
    text = lock.compile_lock(tmp_path, "tinypkg[fast]==1.0.0\notherpkg ; python_version >= '3'\n")
    assert "tinypkg==1.0.0 \\\n    --hash=sha256:" in text  # the multi-line form
    assert osv.pins(text) == [("otherpkg", "1.0.0"), ("tinypkg", "1.0.0")]


def test_the_wheel_and_its_hash_are_the_same_on_every_build(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a, b = lock.build_wheel(tmp_path / "a"), lock.build_wheel(tmp_path / "b")
    assert lock.sha256_file(a) == lock.sha256_file(b)
    assert (
        f"--hash=sha256:{lock.sha256_file(a)}"
        in (ROOT / "snippets/security/output/deps_hash_lock.txt").read_text()
    )


# --- OSV matching -------------------------------------------------------------------------

ADVISORIES = osv.load()


def test_the_old_lock_matches_both_real_advisories_and_the_patched_lock_none():
    old = osv.report(osv.OLD_LOCK, ADVISORIES)
    assert old[0].startswith("pyjwt 2.3.0: PYSEC-2022-202") and "fixed in 2.4.0" in old[0]
    assert old[1].startswith("requests 2.4.0: PYSEC-2023-74") and "fixed in 2.31.0" in old[1]
    assert all("no match" in line for line in osv.report(osv.PATCHED_LOCK, ADVISORIES))


def test_string_ordering_misses_what_pep440_finds():
    requests = next(a for a in ADVISORIES if a.package == "requests")
    assert osv.in_range(Version("2.4.0"), requests.ranges[0])
    assert not osv.string_order_in_range("2.4.0", "2.3.0", "2.31.0")
    listed = requests.versions
    by_text = [v for v in listed if osv.string_order_in_range(v, "2.3.0", "2.31.0")]
    assert len(listed) == 66 and all(osv.in_range(Version(v), requests.ranges[0]) for v in listed)
    assert sorted(by_text) == ["2.3.0", "2.30.0"]


def test_break_it_string_versions_in_the_matcher_lose_the_range_match(monkeypatch):
    """The page's Break it: in_range with versions compared as strings. The range no longer
    matches requests 2.4.0; only the record's explicit versions list still catches it."""
    requests = next(a for a in ADVISORIES if a.package == "requests")
    assert osv.in_range(Version("2.4.0"), requests.ranges[0])
    monkeypatch.setattr(osv, "Version", str)
    assert not osv.in_range("2.4.0", requests.ranges[0])
    assert [how for _, how in osv.matches("requests", "2.4.0", ADVISORIES)] == ["versions"]
    assert osv.matches("requests", "2.4", ADVISORIES) == []  # and "2.4" is not listed at all


def rng(*events: tuple[str, str]) -> object:
    return osv.Range(tuple(events))


@pytest.mark.parametrize(
    ("version", "events", "affected"),
    [
        ("1.0", [("introduced", "0"), ("fixed", "2.0")], True),
        ("2.0", [("introduced", "0"), ("fixed", "2.0")], False),  # fixed is exclusive
        ("2.0.0", [("introduced", "0"), ("fixed", "2.0")], False),  # PEP 440: 2.0.0 == 2.0
        ("2.0rc1", [("introduced", "0"), ("fixed", "2.0")], True),  # a pre-release sorts before
        ("2.0.dev1", [("introduced", "0"), ("fixed", "2.0rc1")], True),  # dev < rc
        ("2.0.post1", [("introduced", "0"), ("fixed", "2.0")], False),  # a post-release after
        ("1.10", [("introduced", "1.2"), ("fixed", "1.9")], False),  # 1.10 > 1.9 as numbers
        ("1!0.5", [("introduced", "0"), ("fixed", "9.0")], False),  # epoch 1 beats all of 0
        ("2.1.214", [("introduced", "0"), ("last_affected", "2.1.214")], True),  # inclusive
        ("2.1.215", [("introduced", "0"), ("last_affected", "2.1.214")], False),
        ("1.5", [("fixed", "2.0"), ("introduced", "1.0")], True),  # events sorted first
        (
            "3.1",
            [("introduced", "1.0"), ("fixed", "1.2"), ("introduced", "3.0"), ("fixed", "3.2")],
            True,
        ),  # fmt: skip
        (
            "2.0",
            [("introduced", "1.0"), ("fixed", "1.2"), ("introduced", "3.0"), ("fixed", "3.2")],
            False,
        ),  # fmt: skip
        ("0.9", [("introduced", "1.0")], False),  # before introduced
        ("5.0", [("introduced", "1.0")], True),  # never fixed
        ("5.0", [("introduced", "1.0"), ("limit", "4.0")], False),  # beyond the limit
        ("3.0", [("introduced", "1.0"), ("limit", "4.0")], True),
        ("9.0", [("introduced", "1.0"), ("limit", "*")], True),
    ],
)
def test_ecosystem_ranges_follow_the_osv_algorithm_with_pep440(version, events, affected):
    assert osv.in_range(Version(version), rng(*events)) is affected


@pytest.mark.parametrize(
    ("events", "affected"),
    [
        ([("introduced", "1.0"), ("fixed", "1.0")], {"1.0": False, "1.1": False}),  # empty
        ([("introduced", "1.0"), ("last_affected", "1.0.0")], {"1.0": True, "1.1": False}),
    ],
)
def test_events_at_the_same_version_give_the_same_answer_in_either_order(events, affected):
    """Ties sort introduced first, whatever the record's order."""
    for order in (events, events[::-1]):
        assert {v: osv.in_range(Version(v), rng(*order)) for v in affected} == affected


def record(**affected_fields: object) -> str:
    affected = {"package": {"ecosystem": "PyPI", "name": "Demo_Pkg"}, **affected_fields}
    return json.dumps({"id": "T-1", "modified": "2024-01-01T00:00:00Z", "affected": [affected]})


def test_names_are_normalized_and_versions_lists_compare_as_pep440():
    advisories = osv.parse(record(versions=["0.1dev-r1234", "1.0"]), "t")
    assert [a.advisory for a, _ in osv.matches("demo.pkg", "1.0.0", advisories)] == ["T-1"]
    # an entry that is not PEP 440 (an old PyPI release) is compared as text, no crash
    assert osv.matches("demo-pkg", "1.0.1", advisories) == []


def test_other_ecosystems_and_git_ranges_are_not_matched_as_pypi_versions():
    npm = json.dumps({"id": "N-1", "modified": "x", "affected": [
        {"package": {"ecosystem": "npm", "name": "requests"}, "versions": ["2.4.0"]}]})  # fmt: skip
    assert osv.matches("requests", "2.4.0", osv.parse(npm, "t")) == []
    git = record(ranges=[{"type": "GIT", "repo": "r", "events": [{"introduced": "0"}]}])
    assert osv.matches("demo-pkg", "1.0", osv.parse(git, "t")) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"id": "X"', "not JSON: Expecting ',' delimiter: line 1 column 12"),
        ('[{"modified": "x"}]', "a record is an object with a string 'id'"),
        ('[{"id": "X"}]', "X: 'modified' is required"),
        (
            record(ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": "1", "fixed": "2"}]}]),
            "events[0]: an event has exactly one of",
        ),  # fmt: skip
        (record(ranges=[{"type": "ECOSYSTEM", "events": [{"patched": "2"}]}]), "got ['patched']"),
        (
            record(ranges=[{"type": "ECOSYSTEM", "events": [{"fixed": "2"}]}]),
            "at least one 'introduced'",
        ),  # fmt: skip
        (
            record(ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": "banana!"}]}]),
            "events[0].introduced: 'banana!' is not a PEP 440 version",
        ),  # fmt: skip
        (
            record(ranges=[{"type": "RANGE", "events": []}]),
            "ranges[0].type: 'RANGE' is not defined",
        ),
        (
            record(
                ranges=[
                    {
                        "type": "ECOSYSTEM",
                        "events": [{"introduced": "0"}, {"fixed": "2"}, {"last_affected": "1"}],
                    }
                ]
            ),
            "'fixed' and 'last_affected' together",
        ),  # fmt: skip
        (
            json.dumps({"id": "X", "modified": "x", "affected": [{"package": {"name": "a"}}]}),
            "affected[0].package needs 'ecosystem' and 'name'",
        ),  # fmt: skip
        (
            json.dumps({"id": "X", "modified": "x", "affected": "oops"}),
            "X: affected: a list of objects; got 'oops'",
        ),
        (record(ranges=["x"]), "T-1: affected[0].ranges: a list of objects; got ['x']"),
        (record(ranges=[{"type": "ECOSYSTEM", "events": "x"}]), "ranges[0].events: a list of"),
        (record(versions=[1.0]), "affected[0].versions: a list of strings; got [1.0]"),
        (record(versions="1.0"), "affected[0].versions: a list of strings; got '1.0'"),
        (
            record(ranges=[{"type": "SEMVER", "events": [{"introduced": "0"}]}]),
            "ranges[0]: a SEMVER range is not evaluated for PyPI",
        ),
    ],
)
def test_a_malformed_advisory_gets_a_clear_error(text, message):
    with pytest.raises(osv.AdvisoryError, match=None) as caught:
        osv.parse(text, "bad.json")
    assert message in str(caught.value)


def test_a_lock_line_that_is_not_an_exact_pin_is_refused():
    assert osv.pins("A==1.0 ; python_version < '3.12'\nb==2 --hash=sha256:00\n# c\n") == [
        ("a", "1.0"),
        ("b", "2"),
    ]
    for line in ("requests>=2.0", "a==1.*", "a @ https://x.test/a.whl", "-e .", "-r other.txt"):
        with pytest.raises(ValueError, match="not an exact pin"):
            osv.pins(line + "\n")


def test_extras_markers_continuations_and_one_name_pinned_twice_are_all_checked():
    """Each of these was a silent "no match" for a reader that split on '==' or kept one
    version per name: the extra stayed in the name, the continuation in the version."""
    text = (
        "--index-url https://pypi.org/simple\n"
        "requests[socks]==2.4.0 \\\n    --hash=sha256:00 \\\n    --hash=sha256:11\n"
        "pyjwt==2.4.0 ; python_full_version >= '3.12'  # via app\n"
        "pyjwt==2.3.0 ; python_full_version < '3.12'\n"
    )
    assert osv.pins(text) == [("requests", "2.4.0"), ("pyjwt", "2.4.0"), ("pyjwt", "2.3.0")]
    found = [line.split(":")[0] for line in osv.report(text, ADVISORIES) if "no match" not in line]
    assert found == ["requests 2.4.0", "pyjwt 2.3.0"]


def test_the_projects_own_lock_parses_and_matches_neither_advisory():
    pinned = osv.pins((ROOT / "requirements.txt").read_text())
    assert len(pinned) > 100 and all(
        Version(v) >= Version("2.4.0") for n, v in pinned if n == "pyjwt"
    )
    # the page says the project's locks carry no hashes yet: change it when they do
    assert "--hash" not in (ROOT / "requirements.txt").read_text()
    assert [line for line in osv.report((ROOT / "requirements.txt").read_text(), ADVISORIES)
            if "no match" not in line] == []  # fmt: skip


def test_dependabot_watches_pip_and_actions_as_the_page_says():
    text = (ROOT / ".github/dependabot.yml").read_text()
    assert "package-ecosystem: pip" in text and "package-ecosystem: github-actions" in text
