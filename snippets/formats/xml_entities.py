"""XML entities on untrusted input: an external entity (XXE) that reads a local file and
nested entities that multiply (billion laughs), through the standard library's parsers
(on the Expat version that ran) and through defusedxml.

Run: python snippets/formats/xml_entities.py
"""

from __future__ import annotations

import pyexpat
import sys
import tempfile
import time
import xml.dom.minidom
import xml.etree.ElementTree as ET
import xml.sax
import xml.sax.handler
from collections.abc import Callable
from pathlib import Path

import defusedxml
import defusedxml.ElementTree


# --8<-- [start:payloads]
def xxe(secret: Path) -> str:
    """An external entity whose value is a local file's contents."""
    return f'<!DOCTYPE r [<!ENTITY x SYSTEM "{secret.as_uri()}">]><r>&x;</r>'


def laughs(levels: int, fan: int = 10) -> str:
    """Entity l<n> is ten copies of l<n-1>: `levels` levels expand to 3 * 10**levels chars."""
    entities = ['<!ENTITY l0 "lol">'] + [
        f'<!ENTITY l{i} "{f"&l{i - 1};" * fan}">' for i in range(1, levels + 1)
    ]
    return f"<!DOCTYPE r [{''.join(entities)}]><r>&l{levels};</r>"


# --8<-- [end:payloads]


# --8<-- [start:parsers]
class Text(xml.sax.ContentHandler):
    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []  # joined once: `+=` on an attribute copies every time

    def characters(self, content: str) -> None:
        self.chunks.append(content)


def sax(document: str, external_entities: bool = False) -> str:
    parser = xml.sax.make_parser()
    parser.setFeature(xml.sax.handler.feature_external_ges, external_entities)
    handler = Text()
    parser.setContentHandler(handler)
    parser.feed(document)
    parser.close()
    return "".join(handler.chunks)


PARSERS: dict[str, Callable[[str], str]] = {
    "ElementTree": lambda doc: ET.fromstring(doc).text or "",
    "minidom": lambda doc: xml.dom.minidom.parseString(doc).documentElement.toxml(),
    "sax": sax,
    "sax, external_ges on": lambda doc: sax(doc, external_entities=True),
    "defusedxml": lambda doc: defusedxml.ElementTree.fromstring(doc).text or "",
}


def outcome(parse: Callable[[str], str], document: str) -> str:
    """What a parser did with a document: the text it produced (shortened), or its error."""
    try:
        text = parse(document)
    except defusedxml.DefusedXmlException as error:
        return f"{type(error).__name__} (entity {error.name!r})"
    except Exception as error:  # each parser has its own exception type: show which
        return f"{type(error).__name__}: {str(error).split(':')[0]}"
    return f"{len(text)} chars: {text[:24]!r}" if len(text) > 24 else repr(text)


# --8<-- [end:parsers]


def main() -> None:
    print(f"Python {sys.version.split()[0]}, {pyexpat.EXPAT_VERSION}")
    with tempfile.TemporaryDirectory() as tmp:
        secret = Path(tmp) / "secret.txt"
        secret.write_text("s3cret-from-disk")
        documents = {
            "XXE (file)": xxe(secret),
            "5 levels (300 KB)": laughs(5),
        }
        for name, document in documents.items():
            size = "" if name.startswith("XXE") else f", a {len(document)}-byte document"
            print(f"\n{name}{size}:")
            for parser, parse in PARSERS.items():
                print(f"  {parser:<21} {outcome(parse, document)}")

    document = laughs(9)
    print(f"\n9 levels, a {len(document)}-byte document that expands to 3 GB:")
    for parser in ("ElementTree", "defusedxml"):
        start = time.process_time()  # CPU time: a busy machine's waiting is not counted
        result = outcome(PARSERS[parser], document)
        print(f"  {parser:<21} {result} (after {time.process_time() - start:.2f} s of CPU)")


if __name__ == "__main__":
    main()
