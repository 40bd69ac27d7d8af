"""Narrative XHTML kept safe (https://hl7.org/fhir/R4/narrative.html, txt-1 and txt-2).

The ``div`` is parsed as XML (lxml, with entities, DTDs and the network off) and walked:
only the basic formatting elements of HTML 4.0 that the spec allows, in the XHTML
namespace, with their own attributes; no scripts, forms, frames, objects or event
attributes; links and images that run no code (no ``javascript:``, ``vbscript:``, nor
``data:`` but for images); inline styles without active parts (``expression()``,
``javascript:``, bindings). Anything else is an error on write, so nothing unsafe is ever
stored for a viewer to render.
"""

from __future__ import annotations

import re

from lxml import etree

from fhir_server.outcome import Issue

XHTML = "http://www.w3.org/1999/xhtml"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


ELEMENTS = _names(
    "p br div h1 h2 h3 h4 h5 h6 a span b em i strong small big tt dfn q var abbr acronym "
    "cite blockquote hr address bdo kbd sub sup ul ol li dl dt dd pre table caption "
    "colgroup col thead tr tfoot tbody th td code samp img map area")
COMMON = _names("title style class id lang dir accesskey tabindex")
CELL = _names("abbr align axis bgcolor char charoff colspan headers nowrap rowspan scope "
              "valign width height")
ROWS = _names("align char charoff valign")
OWN = {  # the attributes HTML 4.0 gives each element, beyond the common ones
    "a": _names("href name type rel rev hreflang charset shape coords"),
    "img": _names("src alt height width border longdesc usemap ismap align hspace vspace"),
    "area": _names("href alt shape coords nohref"), "map": _names("name"),
    "blockquote": _names("cite"), "q": _names("cite"),
    "table": _names("border cellpadding cellspacing frame rules summary width align bgcolor"),
    "td": CELL, "th": CELL, "tr": ROWS | {"bgcolor"}, "thead": ROWS, "tbody": ROWS,
    "tfoot": ROWS, "col": ROWS | {"span", "width"}, "colgroup": ROWS | {"span", "width"},
    "ol": _names("start type compact"), "ul": _names("type compact"),
    "li": _names("type value"), "pre": _names("width"), "br": _names("clear"),
    "hr": _names("align noshade size width"),
    **dict.fromkeys(_names("div p h1 h2 h3 h4 h5 h6 caption"), _names("align")),
}
LINKS = {("a", "href"), ("area", "href"), ("img", "src"), ("img", "longdesc"),
         ("q", "cite"), ("blockquote", "cite")}
ACTIVE_LINK = re.compile(r"(javascript|vbscript|livescript|data):", re.IGNORECASE)
SAFE_IMAGE = re.compile(r"data:image/(png|gif|jpeg|webp|bmp);", re.IGNORECASE)
ACTIVE_STYLE = re.compile(r"expression\s*\(|javascript:|vbscript:|@import|behavior\s*:|"
                          r"-moz-binding", re.IGNORECASE)
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                         huge_tree=False, remove_comments=False)


def check_narrative(text: str, path: str) -> list[Issue]:
    """The issues of one xhtml value (empty when it is a safe, non-empty ``div``)."""
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        return [_unsafe("a DOCTYPE or entity declaration is not allowed", path)]
    try:
        root = etree.fromstring(text.encode(), PARSER)
    except etree.XMLSyntaxError as error:
        return [Issue("value", f"The narrative is not well-formed XHTML: {error}", path)]
    if root.tag != f"{{{XHTML}}}div":
        return [Issue("value", "The narrative must be a <div> in the XHTML namespace "
                      f"(xmlns=\"{XHTML}\")", path)]
    issues: list[Issue] = []
    for node in root.iter():
        if isinstance(node, etree._ProcessingInstruction):
            issues.append(_unsafe("processing instructions are not allowed", path))
        elif isinstance(node.tag, str):
            _element(node, path, issues)
    if not issues and not _has_content(root):
        issues.append(Issue("invariant", "txt-2: the narrative must have some "
                            "non-whitespace content", path))
    return issues


def _element(node: etree._Element, path: str, issues: list[Issue]) -> None:
    namespace, _, name = node.tag[1:].partition("}") if node.tag[0] == "{" else ("", "", node.tag)
    if namespace != XHTML or name not in ELEMENTS:
        issues.append(_unsafe(f"the element <{name}> is not allowed", path))
        return
    allowed = OWN.get(name, frozenset())
    for attribute, raw in node.attrib.items():
        value = str(raw)  # lxml gives str for text parsed as here; its stubs allow bytes
        if attribute == XML_LANG:
            continue
        if attribute not in COMMON and attribute not in allowed:
            issues.append(_unsafe(f"the attribute {attribute!r} of <{name}> is not allowed",
                                  path))
        elif (name, attribute) in LINKS and not _safe_link(name, value):
            issues.append(_unsafe(f"<{name} {attribute}> must not run code "
                                  f"({value[:40]!r})", path))
        elif attribute == "style" and ACTIVE_STYLE.search(value):
            issues.append(_unsafe(f"the style of <{name}> has active content", path))


def _safe_link(element: str, value: str) -> bool:
    link = "".join(c for c in value if c > " ")  # browsers skip spaces, controls in a scheme
    return not ACTIVE_LINK.match(link) or (element == "img" and bool(SAFE_IMAGE.match(link)))


def _has_content(root: etree._Element) -> bool:
    return bool("".join(map(str, root.itertext())).strip()) or any(
        True for _ in root.iter(f"{{{XHTML}}}img"))


def _unsafe(what: str, path: str) -> Issue:
    return Issue("invariant", f"txt-1: {what} in a narrative", path)
