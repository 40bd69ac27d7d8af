"""Narrative XHTML: the spec's allowed elements and attributes (txt-1), some content (txt-2),
nothing that runs code; an unsafe narrative is never stored."""

from __future__ import annotations

import pytest

from fhir_server.validation.narrative import check_narrative

XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'


def verdict(inner: str, root: str = f"<div {XHTML}>{{}}</div>") -> list[str]:
    return [i.diagnostics for i in check_narrative(root.format(inner), "Patient.text.div")]


@pytest.mark.parametrize("inner", [
    "张三，男，66岁",
    '<p>a<br/>b</p><table border="1"><tr><td colspan="2" style="color:red">x</td></tr></table>',
    '<a href="http://example.org/x">link</a> <a name="top">t</a> <a href="#top">up</a>',
    '<a href="ftp://ftp.example.org/a">ftp</a> <a href="mailto:a@b.cn">mail</a>',
    '<img src="data:image/png;base64,AAAA" alt="x"/>',
    '<span xml:lang="zh" lang="zh" class="c" id="i" title="t">字</span><!-- a comment -->',
    '<ul><li>1</li></ul><ol start="2"><li value="3">x</li></ol><pre>x</pre><h3>x</h3>',
    '<p style="background-image: url(data:image/png;base64,AAAA)">x</p>',
])
def test_safe_narratives_pass(inner):
    assert verdict(inner) == []


@pytest.mark.parametrize(("inner", "said"), [
    ("<script>alert(1)</script>x", "<script>"),
    ('<p onclick="steal()">x</p>', "'onclick'"),
    ('<img src="x.png" onerror="steal()"/>', "'onerror'"),
    ('<a href="javascript:alert(1)">x</a>', "must not run code"),
    ('<a href=" Java&#x09;Script:alert(1)">x</a>', "must not run code"),
    ('<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', "must not run code"),
    ('<img src="javascript:alert(1)"/>', "must not run code"),
    ('<iframe src="http://evil.example"></iframe>x', "<iframe>"),
    ('<form action="x"><input/></form>', "<form>"),
    ('<object data="x.swf"></object>x', "<object>"),
    ('<p style="width: expression(alert(1))">x</p>', "active content"),
    ('<svg xmlns="http://www.w3.org/2000/svg"><script>x</script></svg>', "<svg>"),
    ('<?xml-stylesheet href="evil.xsl"?>x', "processing instructions"),
])
def test_unsafe_narratives_are_errors(inner, said):
    found = verdict(inner)
    assert found and all(f.startswith("txt-1") for f in found), found
    assert said in found[0]


@pytest.mark.parametrize(("text", "said"), [
    ("<div>x</div>", "XHTML namespace"),
    (f"<p {XHTML}>x</p>", "must be a <div>"),
    (f"<div {XHTML}>   </div>", "txt-2"),
    (f"<div {XHTML}><b>x</div>", "not well-formed"),
    (f'<!DOCTYPE div [<!ENTITY e "x">]><div {XHTML}>&e;</div>', "DOCTYPE"),
])
def test_malformed_or_empty_narratives_are_errors(text, said):
    found = verdict("", root=text)
    assert len(found) == 1 and said in found[0], found


def test_an_unsafe_narrative_is_refused_and_not_stored(client):
    patient = {"resourceType": "Patient", "id": "xss", "text": {
        "status": "generated", "div": f'<div {XHTML}><img src="x" onerror="steal()"/>x</div>'}}
    answer = client.put("/Patient/xss", json=patient)
    assert answer.status_code == 400
    issue, = answer.json()["issue"]
    assert issue["expression"] == ["Patient.text.div"] and issue["code"] == "invariant"
    assert client.get("/Patient/xss").status_code == 404
