"""XML namespaces (docs/formats/xml-entities.md): a parsed name is (namespace URI, local
name) and the prefix is only an alias (Namespaces in XML 1.0, Third Edition, §2.1, §4,
§6.1-6.3). Every claim is run beside its control: the same search on a document without the
default namespace, the same text with another URI, SAX with and without namespaces."""

from __future__ import annotations

import http.server
import threading
import urllib.request
import xml.etree.ElementTree as ET
import xml.sax
import xml.sax.handler
from xml.sax import SAXParseException

import defusedxml
import defusedxml.minidom
import defusedxml.sax
import pytest

from tests.conftest import load_snippet

xn = load_snippet("formats/xml_namespaces")
BOOK = "Sketch of the Analytical Engine"
# CATALOG without its default namespace declaration: unprefixed names in no namespace
NO_DEFAULT = xn.CATALOG.replace(f' xmlns="{xn.BOOKS}"', "")


def test_two_titles_with_one_local_name_are_told_apart_by_their_namespace():
    root = xn.parse(xn.CATALOG)
    assert [t.text for t in root.findall(".//b:title", xn.NS)] == [BOOK]
    assert [t.text for t in root.findall(".//p:title", xn.NS)] == ["Countess"]
    assert {t.tag for t in root.iter() if t.tag.endswith("}title")} == {
        f"{{{xn.BOOKS}}}title",
        f"{{{xn.PEOPLE}}}title",
    }
    # the control: ignore the namespace ({*}) and the two vocabularies collide again
    assert [t.text for t in root.findall(".//{*}title")] == [BOOK, "Countess"]


def test_find_by_local_name_finds_nothing_under_a_default_namespace():
    root = xn.parse(xn.CATALOG)
    assert root.find("book/title") is None  # the classic mistake
    assert root.find("b:book/b:title", xn.NS).text == BOOK  # the same search, by URI
    assert root.find(f"{{{xn.BOOKS}}}book/{{{xn.BOOKS}}}title").text == BOOK
    # the counterfactual: without xmlns="..." the local-name search works, so it was the
    # default namespace, not the search, that hid the element
    assert xn.parse(NO_DEFAULT).find("book/title").text == BOOK
    assert xn.book_title(NO_DEFAULT) is None


def test_prefixes_are_aliases_and_only_the_uri_counts():
    assert "b:catalog" in xn.RESPELLED and "<catalog" in xn.CATALOG  # spelled differently
    assert xn.names(xn.RESPELLED) == xn.names(xn.CATALOG)
    assert xn.book_title(xn.RESPELLED) == xn.book_title(xn.CATALOG) == BOOK


@pytest.mark.parametrize("pair", xn.EQUIVALENT_URIS)
def test_uris_equivalent_under_rfc_3986_are_different_namespace_names(pair):
    """A host's case and %7E vs ~ make no difference to RFC 3986 §6.2.2.1-6.2.2.2, but
    Namespaces §2.3 compares the strings: other names, and the search finds nothing."""
    searched, written = xn.EQUIVALENT_URIS[pair]
    assert searched != written
    assert searched.lower() == written.lower().replace("%7e", "~")  # one URI to RFC 3986
    assert xn.names(xn.with_books_uri(written)) != xn.names(xn.with_books_uri(searched))
    assert xn.book_title(xn.with_books_uri(searched), books=searched) == BOOK  # the control
    assert xn.book_title(xn.with_books_uri(written), books=searched) is None


def test_an_inner_declaration_wins_inside_its_element_and_xmlns_empty_undeclares():
    """§6.1: a declaration's scope excludes inner declarations of the same prefix; §6.2:
    xmlns="" means no default namespace within it."""
    names = xn.names(xn.SCOPED)
    assert names == [
        f"{{{xn.BOOKS}}}catalog",
        "note",  # under xmlns="": in no namespace
        "title",
        "{urn:example:pets}author",  # p rebound inside <p:author>
        "{urn:example:pets}name",
        f"{{{xn.PEOPLE}}}name",  # the outer binding again after </p:author>
    ]
    # the control: without the inner declarations the outer bindings apply throughout
    flat = xn.SCOPED.replace(' xmlns=""', "").replace(' xmlns:p="urn:example:pets"', "")
    assert xn.names(flat)[1:5] == [
        f"{{{xn.BOOKS}}}note",
        f"{{{xn.BOOKS}}}title",
        f"{{{xn.PEOPLE}}}author",
        f"{{{xn.PEOPLE}}}name",
    ]


def test_the_dom_keeps_the_qualified_name_beside_uri_and_local_name():
    """DOM Standard: tagName is the qualified name (prefix included); namespaceURI and
    localName are the expanded name, the same for both spellings."""
    respelled, catalog = xn.dom_title(xn.RESPELLED), xn.dom_title(xn.CATALOG)
    assert (respelled.tagName, catalog.tagName) == ("b:title", "title")
    assert (respelled.namespaceURI, respelled.localName) == (xn.BOOKS, "title")
    assert (catalog.namespaceURI, catalog.localName) == (xn.BOOKS, "title")


def test_the_parser_does_not_fetch_a_namespace_uri():
    """A namespace URI pointing at a live local HTTP server: parsing sends it nothing;
    the control is a request the test makes itself, which the server counts."""
    requests: list[str] = []

    class Count(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Count)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}/books"
        document = xn.with_books_uri(uri)
        assert xn.book_title(document, books=uri) == BOOK
        assert xn.sax_names(document, namespaces=True)[2] == (uri, "title")
        defusedxml.minidom.parseString(document)
        assert requests == []
        urllib.request.urlopen(uri, timeout=5).close()  # the control: the server counts
        assert requests == ["/books"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_default_namespace_applies_to_elements_not_to_attributes():
    book = xn.parse(xn.CATALOG).find("b:book", xn.NS)
    assert book.tag == f"{{{xn.BOOKS}}}book"
    assert book.attrib == {"id": "b1"}
    assert book.get(f"{{{xn.BOOKS}}}id") is None
    # §6.3's examples: a and n1:a differ (a is in no namespace) ...
    good = xn.parse(xn.DEFAULTED.format('<good a="1" n1:a="2"/>'))[0]
    assert good.attrib == {"a": "1", "{http://www.w3.org}a": "2"}
    # ... while n1:a and n2:a, two prefixes for one URI, are the same name twice
    with pytest.raises(ET.ParseError, match="duplicate attribute"):
        xn.parse(xn.SAME_URI.format('<bad n1:a="1" n2:a="2"/>'))
    # the control for that error: two prefixes for two different URIs are fine
    two = (
        '<x xmlns:n1="http://www.w3.org" xmlns:n2="http://example.org"><ok n1:a="1" n2:a="2"/></x>'
    )
    assert len(xn.parse(two)[0].attrib) == 2


def test_sax_namespace_processing_is_off_by_default_in_python_and_defusedxml():
    """Python's xml.sax documents feature_namespaces as false by default; defusedxml's
    make_parser returns the same expat reader with the same default (sax_names sets the
    feature explicitly, so the page's Break it states this default separately)."""
    for make_parser in (xml.sax.make_parser, defusedxml.sax.make_parser):
        assert not make_parser().getFeature(xml.sax.handler.feature_namespaces)  # 0


def test_break_it_sax_without_namespaces_reports_the_prefix():
    """The page's Break it: SAX's default (feature_namespaces off) hands the application
    qualified names, so code matching 'title' misses RESPELLED's 'b:title'; with the
    feature on, both spellings give the same (uri, local) pairs."""
    off = [xn.sax_names(d, namespaces=False) for d in (xn.CATALOG, xn.RESPELLED)]
    assert off[0][2] == "title" and off[1][2] == "b:title"
    assert off[0] != off[1]
    on = [xn.sax_names(d, namespaces=True) for d in (xn.CATALOG, xn.RESPELLED)]
    assert on[0] == on[1]
    assert on[0][2] == (xn.BOOKS, "title")


def test_a_document_that_is_not_namespace_well_formed_is_refused():
    """§5 Prefix Declared: a prefix nobody bound is an error, not a name in no namespace."""
    assert xn.error("<r><q:title/></r>").startswith("ParseError: unbound prefix")
    assert xn.error('<r xmlns:q="urn:q"><q:title/></r>') == "parsed"  # the control
    with pytest.raises(SAXParseException, match="unbound prefix"):
        xn.sax_names("<r><q:title/></r>", namespaces=True)
    # without namespace processing SAX accepts it: 'q:title' is just a name with a colon
    assert xn.sax_names("<r><q:title/></r>", namespaces=False) == ["r", "q:title"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("", "no element found"),  # empty
        ("<catalog xmlns='http://example.org/books'><book>", "no element found"),  # truncated
        ("<catalog xmlns:='http://example.org/books'/>", "not well-formed"),  # no prefix name
        ("<catalog xmlns:p=''><p:book/></catalog>", "must not undeclare prefix"),  # §5
    ],
)
def test_malformed_namespaced_documents_get_a_clear_error(document, message):
    assert xn.error(document).startswith(f"ParseError: {message}")


def test_the_parser_is_defusedxml_so_a_dtd_with_entities_is_still_refused():
    """The page's own advice (parse untrusted XML with defusedxml) holds for namespaced
    documents too: a namespaced document with an entity is refused by both parse paths."""
    document = f'<!DOCTYPE catalog [<!ENTITY e "x">]><catalog xmlns="{xn.BOOKS}">&e;</catalog>'
    with pytest.raises(defusedxml.EntitiesForbidden):
        xn.parse(document)
    with pytest.raises(defusedxml.EntitiesForbidden):
        xn.sax_names(document, namespaces=True)
    # the control: the standard library's parser expands it
    assert ET.fromstring(document).text == "x"
