"""Deserializing untrusted data (docs/formats/unsafe-deserialization.md): the payloads run
code (a marker file appears) exactly where the page says, and nowhere else."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest

from tests.conftest import load_snippet

de = load_snippet("formats/deserialize_untrusted")


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "marker"


def test_pickle_loads_runs_the_senders_code(marker):
    data = de.pickle_payload(marker)
    assert b"Payload" not in data  # the receiver needs no attacker class
    pickle.loads(data)
    assert marker.read_text() == "ran"


def test_control_a_plain_pickle_writes_nothing(marker):
    assert pickle.loads(pickle.dumps({"id": 7})) == {"id": 7}
    assert not marker.exists()


def test_the_restricted_unpickler_refuses_the_payload_and_loads_plain_data(marker):
    with pytest.raises(pickle.UnpicklingError, match="builtins.exec is forbidden"):
        de.restricted_loads(de.pickle_payload(marker))
    assert not marker.exists()
    assert de.restricted_loads(pickle.dumps({"tags": ["a"]})) == {"tags": ["a"]}


@pytest.mark.parametrize("cut", [0, 5, -3], ids=["empty", "first 5 bytes", "last 3 cut"])
def test_the_restricted_unpickler_answers_a_truncated_pickle_with_an_error(cut):
    """Malformed input: an empty or cut-off pickle is an error, never a partial value."""
    data = pickle.dumps({"tags": ["a"]})[:cut] if cut else b""
    with pytest.raises((pickle.UnpicklingError, EOFError)):
        de.restricted_loads(data)


def test_break_it_an_allowlist_that_allows_everything_runs_the_payload(marker):
    """Break it: find_class without the check is pickle.loads again."""

    class Permissive(de.RestrictedUnpickler):
        def find_class(self, module, name):
            return pickle.Unpickler.find_class(self, module, name)

    Permissive(io.BytesIO(de.pickle_payload(marker))).load()
    assert marker.exists()


def test_only_the_unsafe_yaml_loader_runs_code(marker):
    for name, load in de.YAML_LOADERS.items():
        marker.unlink(missing_ok=True)
        if name == "yaml.load(UnsafeLoader)":
            load(de.yaml_payload(marker))
            assert marker.read_text() == "ran"
        else:
            with pytest.raises(Exception):  # noqa: B017 - ConstructorError or TypeError
                load(de.yaml_payload(marker))
            assert not marker.exists(), name


def test_control_safe_load_reads_ordinary_yaml():
    assert de.YAML_LOADERS["yaml.safe_load"]("a: [1, 2]") == {"a": [1, 2]}


def test_the_schema_accepts_the_valid_request_and_names_every_problem():
    assert de.problems(de.REQUESTS["valid"]) == []
    assert de.problems(de.REQUESTS["extra field"]) == [
        "(root): Additional properties are not allowed ('is_admin' was unexpected)"
    ]
    assert len(de.problems(de.REQUESTS["wrong types"])) == 2
    assert len(de.problems(de.REQUESTS["out of range"])) == 3
    assert de.problems("{not json") and de.problems("{not json")[0].startswith("not JSON")
