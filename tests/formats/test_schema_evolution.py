"""Schema evolution (docs/formats/schema-evolution.md): every claim on the page is run here
with the counterfactual beside it."""

from __future__ import annotations

import pytest

from tests.conftest import load_snippet

pb = load_snippet("formats/evolution_protobuf")
avro = load_snippet("formats/evolution_avro")


def test_an_old_protobuf_reader_keeps_the_field_it_does_not_know():
    seen, rewritten, email = pb.old_reader_round_trip()
    assert "email" not in seen and "ada@example.org" not in seen
    assert email == "ada@example.org"
    assert b"ada@example.org" in rewritten


def test_control_discarding_unknown_fields_loses_it():
    _, rewritten, email = pb.old_reader_round_trip(discard_unknown=True)
    assert email == ""
    assert b"ada@example.org" not in rewritten


def test_reusing_a_field_number_reads_the_old_value_as_the_new_field_without_error():
    phone, _ = pb.reused_number()
    assert phone == "ada@example.org"


def test_reserved_makes_protoc_refuse_the_number_and_a_free_number_compiles():
    code, error = pb.protoc(pb.RESERVED % 3)
    assert code != 0 and "uses reserved number 3" in error
    code, error = pb.protoc(pb.RESERVED % 4)
    assert code == 0, error


@pytest.mark.parametrize("change", avro.CHANGES, ids=lambda c: c[0])
def test_avro_matrix_run_matches_the_cited_rules(change):
    name, old, new, predicted = change
    backward, _ = avro.can_read(old, new)
    forward, _ = avro.can_read(new, old)
    assert avro.verdict(backward, forward) == predicted


def test_control_a_schema_reads_its_own_data():
    for _, old, new, _ in avro.CHANGES:
        assert avro.can_read(old, old)[0] and avro.can_read(new, new)[0]


def test_the_alias_maps_the_old_name_to_the_new_one():
    _, old, new, _ = avro.CHANGES[4]
    assert avro.read(avro.write(old, {"id": 7, "name": "ada"}), old, new) == {
        "id": 7,
        "full_name": "ada",
    }


def test_break_it_removing_the_default_turns_full_into_forward():
    """Break it: delete "default" from the added field and the new reader fails on old data."""
    _, old, new, _ = avro.CHANGES[0]
    no_default = avro.user(*[{k: v for k, v in f.items() if k != "default"} for f in new["fields"]])
    assert avro.verdict(avro.can_read(old, new)[0], avro.can_read(new, old)[0]) == "FULL"
    backward, forward = avro.can_read(old, no_default)[0], avro.can_read(no_default, old)[0]
    assert avro.verdict(backward, forward) == "FORWARD"


def test_the_wrong_writer_schema_gives_garbage_or_an_error():
    assert "{'name': '\\x06ad', 'id': -49}" in avro.wrong_writer_schema(3)
    assert "EOFError" in avro.wrong_writer_schema(7)
    # the control: the right writer schema reads the same bytes correctly
    written = avro.user(avro.ID, avro.NAME)
    data = avro.write(written, {"id": 3, "name": "ada"})
    assert avro.read(data, written, written) == {"id": 3, "name": "ada"}


def test_a_container_file_carries_the_writer_schema():
    assert avro.container_file_carries_its_schema() == {"id": 7, "name": "ada", "email": ""}


def test_a_reused_number_with_another_wire_type_reads_as_empty_and_keeps_the_bytes():
    """The page's aside: string email = 3 read as int32 age = 3 gives age 0, no error."""
    v2 = pb.message_class("v2", pb.V2)
    v4 = pb.message_class("v4", [*pb.V1, (3, "age", pb.INT32)])
    read = v4.FromString(v2(id=7, name="ada", email="ada@example.org").SerializeToString())
    assert read.age == 0
    assert b"ada@example.org" in read.SerializeToString()
