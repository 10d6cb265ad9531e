"""XML namespaces: a name is a (namespace URI, local name) pair and the prefix is only an
alias, shown by parsing documents with defusedxml's ElementTree — two <title>s told apart,
two spellings of one document that parse to the same names, and the default namespace that
applies to elements but not to attributes.

Run: python snippets/formats/xml_namespaces.py
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import xml.sax
import xml.sax.handler

import defusedxml.ElementTree
import defusedxml.minidom
import defusedxml.sax

# --8<-- [start:documents]
BOOKS = "http://example.org/books"  # namespace names: identifiers the parser does not fetch
PEOPLE = "http://example.org/people"

# Two vocabularies, one local name: a book's <title> and a person's <title>.
CATALOG = f"""<catalog xmlns="{BOOKS}" xmlns:p="{PEOPLE}">
  <book id="b1">
    <title>Sketch of the Analytical Engine</title>
    <p:author><p:title>Countess</p:title><p:name>Ada Lovelace</p:name></p:author>
  </book>
</catalog>"""

# The same document spelled with other prefixes and no default namespace.
RESPELLED = f"""<b:catalog xmlns:b="{BOOKS}" xmlns:who="{PEOPLE}">
  <b:book id="b1">
    <b:title>Sketch of the Analytical Engine</b:title>
    <who:author><who:title>Countess</who:title><who:name>Ada Lovelace</who:name></who:author>
  </b:book>
</b:catalog>"""

# Controls: each pair is one URI to RFC 3986 §6.2.2 (a host's case does not matter, %7E
# is ~) but two namespace names, which Namespaces §2.3 compares as strings.
EQUIVALENT_URIS = {
    "host in upper case": (BOOKS, "http://Example.org/books"),
    "%7E for ~": ("http://example.org/~books", "http://example.org/%7Ebooks"),
}


def with_books_uri(uri: str) -> str:
    """CATALOG with the books namespace written as `uri`."""
    return CATALOG.replace(BOOKS, uri)


# Scope (§6.1, §6.2): an inner declaration wins inside its element; xmlns="" undeclares
# the default namespace.
SCOPED = f"""<catalog xmlns="{BOOKS}" xmlns:p="{PEOPLE}">
  <note xmlns=""><title>draft</title></note>
  <p:author xmlns:p="urn:example:pets"><p:name>Rex</p:name></p:author>
  <p:name>Ada Lovelace</p:name>
</catalog>"""
# --8<-- [end:documents]


# --8<-- [start:names]
def parse(document: str) -> ET.Element:
    """defusedxml's ElementTree: the standard parser, with DTDs and entities refused."""
    return defusedxml.ElementTree.fromstring(document)


def names(document: str) -> list[str]:
    """Every element's name after parsing, in document order: '{uri}local', no prefix."""
    return [element.tag for element in parse(document).iter()]


NS = {"b": BOOKS, "p": PEOPLE}  # our own prefixes for searching: any would do


def book_title(document: str, books: str = BOOKS) -> str | None:
    """The book's title, found by namespace URI whatever prefix the sender chose."""
    return parse(document).findtext("b:book/b:title", namespaces={**NS, "b": books})


# --8<-- [end:names]


# --8<-- [start:sax]
class Names(xml.sax.ContentHandler):
    """The element names a SAX parser reports, namespace-aware or not."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[object] = []

    def startElement(self, name: str, attrs: object) -> None:  # namespaces off
        self.names.append(name)

    def startElementNS(self, name: tuple[str | None, str], qname: object, attrs: object) -> None:
        self.names.append(name)  # namespaces on: (uri, local)


def sax_names(document: str, namespaces: bool) -> list[object]:
    parser = defusedxml.sax.make_parser()
    parser.setFeature(xml.sax.handler.feature_namespaces, namespaces)
    handler = Names()
    parser.setContentHandler(handler)
    parser.feed(document)
    parser.close()
    return handler.names


# --8<-- [end:sax]


def dom_title(document: str) -> object:
    """The DOM's view of the book's title: minidom (via defusedxml), looked up by URI."""
    return defusedxml.minidom.parseString(document).getElementsByTagNameNS(BOOKS, "title")[0]


def error(document: str) -> str:
    """The parser's error for a document that is not namespace-well-formed."""
    try:
        parse(document)
    except ET.ParseError as exc:
        return f"ParseError: {exc}"
    return "parsed"


# The example of Namespaces in XML 1.0 §6.3: n1 and n2 are bound to the same URI.
SAME_URI = '<x xmlns:n1="http://www.w3.org" xmlns:n2="http://www.w3.org">{}</x>'
DEFAULTED = '<x xmlns:n1="http://www.w3.org" xmlns="http://www.w3.org">{}</x>'


def texts(found: ET.Element | list[ET.Element] | None) -> list[str | None]:
    """What a find() or findall() returned, as the elements' texts."""
    elements = found if isinstance(found, list) else [] if found is None else [found]
    return [element.text for element in elements]


def main() -> None:
    root = parse(CATALOG)
    print("CATALOG, every element's name after parsing:")
    for name in names(CATALOG):
        print(f"  {name}")

    print("\nsearching CATALOG for titles:")
    for call, found in {
        "find('book/title')": root.find("book/title"),
        "find('b:book/b:title', NS)": root.find("b:book/b:title", NS),
        "find('b:book/p:author/p:title', NS)": root.find("b:book/p:author/p:title", NS),
        "findall('.//{*}title')": root.findall(".//{*}title"),
    }.items():
        print(f"  {call:<37} {texts(found)}")

    book = root.find("b:book", NS)
    print(f"\nthe book's attributes: {book.attrib}")
    print(f"  get('id') {book.get('id')!r}, get('{{{BOOKS}}}id') {book.get(f'{{{BOOKS}}}id')!r}")

    print("\nother prefixes, same URI:")
    same = names(RESPELLED) == names(CATALOG)
    print(f"  RESPELLED same names as CATALOG: {same}, book_title: {book_title(RESPELLED)!r}")

    print("\nURIs equivalent under RFC 3986, searched for by the first:")
    for label, (searched, written) in EQUIVALENT_URIS.items():
        for uri in (searched, written):
            found = book_title(with_books_uri(uri), books=searched)
            print(f"  {label:<18} {uri:<29} book_title: {found!r}")

    print("\nSCOPED, every element's name (inner declarations win):")
    for name in names(SCOPED):
        print(f"  {name}")

    print("\nthe DOM (minidom), the book's <title>:")
    title = dom_title(RESPELLED)
    print(f"  tagName {title.tagName!r}, namespaceURI {title.namespaceURI!r},"
          f" localName {title.localName!r}")  # fmt: skip

    print("\nSAX, the name it reports for the book's <title>:")
    for namespaces in (False, True):
        for label, document in (("CATALOG", CATALOG), ("RESPELLED", RESPELLED)):
            name = sax_names(document, namespaces)[2]
            print(f"  feature_namespaces={namespaces!s:<5} {label:<9} {name!r}")

    print("\nNamespaces in XML 1.0 §6.3, two attributes on one element:")
    for label, document in (
        ("n1:a, n2:a (same URI)", SAME_URI.format('<bad n1:a="1" n2:a="2"/>')),
        ("a, n1:a (n1 = default)", DEFAULTED.format('<good a="1" n1:a="2"/>')),
    ):
        result = error(document)
        if result == "parsed":
            result = f"parsed: {parse(document)[0].attrib}"
        print(f"  {label:<23} {result}")
    print(f"  {'an undeclared prefix':<23} {error('<r><q:title/></r>')}")


if __name__ == "__main__":
    main()
