"""XML entities (docs/formats/xml-entities.md): defusedxml refuses what the standard
library's parsers expand, and the counterfactuals (SAX with external entities on, a
version of Expat without the amplification limit) are run or checked against the version."""

from __future__ import annotations

import pyexpat
import xml.etree.ElementTree as ET
from pathlib import Path

import defusedxml
import pytest

from tests.conftest import load_snippet

xe = load_snippet("formats/xml_entities")
EXPAT = tuple(int(n) for n in pyexpat.EXPAT_VERSION.removeprefix("expat_").split("."))


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("s3cret-from-disk")
    return path


def test_sax_reads_a_local_file_once_external_entities_are_on(secret):
    assert xe.sax(xe.xxe(secret), external_entities=True) == "s3cret-from-disk"
    # the default since Python 3.7.1: external general entities are not fetched
    assert xe.sax(xe.xxe(secret)) == ""


def test_elementtree_and_minidom_do_not_fetch_the_file(secret):
    with pytest.raises(ET.ParseError, match="undefined entity"):
        ET.fromstring(xe.xxe(secret))
    # minidom drops the reference (the Python docs say "returns the unexpanded entity
    # verbatim"; the page notes the difference)
    assert xe.PARSERS["minidom"](xe.xxe(secret)) == "<r/>"


def test_defusedxml_refuses_external_and_internal_entities(secret):
    for document in (xe.xxe(secret), xe.laughs(1)):
        with pytest.raises(defusedxml.EntitiesForbidden):
            xe.PARSERS["defusedxml"](document)
    # the control: a document without a DTD parses
    assert xe.PARSERS["defusedxml"]("<r>plain</r>") == "plain"


def test_five_levels_expand_a_319_byte_document_a_thousandfold():
    document = xe.laughs(5)
    assert len(document) == 319
    for parser in ("ElementTree", "sax"):
        assert len(xe.PARSERS[parser](document)) == 300_000


@pytest.mark.skipif(
    EXPAT < (2, 4, 0),
    reason=f"{pyexpat.EXPAT_VERSION}: before 2.4.0 Expat has no limit on amplification"
    " through entities (the Python docs ask for 2.7.2 or newer for all the XML DoS fixes)",
)
def test_expat_2_4_or_newer_stops_the_billion_laughs():
    with pytest.raises(ET.ParseError, match="amplification"):
        ET.fromstring(xe.laughs(9))
