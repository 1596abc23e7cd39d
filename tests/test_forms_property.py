"""Properties of form_submission: the bodies decode back to the fields (with the standard
library's parsers), and random forms give the entries that a small model of the standard's
rules ("constructing the entry list") says."""

from __future__ import annotations

import email.parser
import email.policy
import html
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_scrape.scraper.forms import FieldValue, FormFile, form_submission

from .conftest import examples

URL = "http://example.com/form"
# Any text but surrogates (which become U+FFFD, see test_forms.py).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)


def crlf(text: str) -> str:
    return re.sub(r"\r\n|\r|\n", "\r\n", text)


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.tuples(TEXT, TEXT), max_size=8, unique_by=lambda pair: pair[0]))
def test_urlencoded_body_round_trips_through_parse_qsl(fields: list[tuple[str, str]]) -> None:
    result = form_submission('<form method="post"></form>', url=URL, values=fields)
    assert result.body is not None
    decoded = parse_qsl(result.body.decode("ascii"), keep_blank_values=True, encoding="utf-8")
    assert decoded == [(crlf(name), crlf(value)) for name, value in fields]


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.tuples(TEXT, TEXT), max_size=8))
def test_hidden_fields_round_trip_through_the_query(fields: list[tuple[str, str]]) -> None:
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(n)}" value="{html.escape(v)}">' for n, v in fields
    )
    result = form_submission(f"<form>{inputs}</form>", url=URL)
    query = result.url.partition("?")[2]
    # The HTML parser reads CR as LF and NUL as U+FFFD; nameless inputs are skipped.
    expected = [(clean(n), clean(v)) for n, v in fields if n]
    assert parse_qsl(query, keep_blank_values=True) == expected


def clean(text: str) -> str:
    return crlf(text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "\ufffd"))


# Names a multipart part can carry that the email parser reads back as they are: no quote,
# backslash or newline (the first and last are escaped as %22 / %0D%0A, as browsers do).
NAMES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'),
                min_size=1, max_size=12)  # fmt: skip
FILES = st.builds(
    FormFile,
    filename=NAMES,
    content_type=st.sampled_from(["application/octet-stream", "text/plain", "image/png"]),
    data=st.binary(max_size=40),
)


@settings(max_examples=examples(200), deadline=None)
@given(
    st.lists(
        st.tuples(NAMES, st.one_of(TEXT, FILES)), min_size=1, max_size=6, unique_by=lambda p: p[0]
    )
)
def test_multipart_body_parses_back_with_the_email_parser(
    fields: list[tuple[str, FieldValue]],
) -> None:
    result = form_submission(
        '<form method="post" enctype="multipart/form-data"></form>', url=URL, values=fields
    )
    assert result.body is not None
    head = f"Content-Type: {result.headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + result.body)
    assert message.is_multipart()
    parts = list(message.iter_parts())
    assert len(parts) == len(fields)
    for part, (name, value) in zip(parts, fields, strict=True):
        assert part.get_param("name", header="content-disposition") == name
        payload = part.get_payload(decode=True)
        if isinstance(value, FormFile):
            assert part.get_param("filename", header="content-disposition") == value.filename
            assert part.get_content_type() == value.content_type
            assert payload == value.data
        else:
            assert part.get_filename() is None
            assert payload == crlf(value).encode("utf-8")


# A model of the entry list for random forms.

VALUES = st.text(st.sampled_from("ab &<>\"'=\u00e9\u4e2d"), max_size=5)
NAME = st.sampled_from(["a", "b", "c", ""])


@dataclass
class Control:
    kind: str
    name: str
    value: str | None
    disabled: bool = False
    checked: bool = False
    fieldset: bool = False  # wrapped in a disabled fieldset
    options: list[tuple[str, bool, bool]] = field(default_factory=list)  # value, sel, disabled

    def html(self) -> str:
        attrs = f' name="{html.escape(self.name)}"' if self.name else ""
        if self.value is not None and self.kind != "textarea":
            attrs += f' value="{html.escape(self.value)}"'
        attrs += " disabled" * self.disabled + " checked" * self.checked
        if self.kind == "textarea":
            markup = f"<textarea{attrs}>{html.escape(self.value or '')}</textarea>"
        elif self.kind == "select":
            options = "".join(
                f'<option value="{html.escape(v)}"{" selected" * s}{" disabled" * d}>x</option>'
                for v, s, d in self.options
            )
            markup = f"<select{attrs}>{options}</select>"
        elif self.kind == "button":
            markup = f"<button{attrs}>label</button>"
        else:
            markup = f'<input type="{self.kind}"{attrs}>'
        return f"<fieldset disabled>{markup}</fieldset>" if self.fieldset else markup


KINDS = ("text", "hidden", "checkbox", "radio", "textarea", "select", "submit", "reset",
         "button", "file")  # fmt: skip
CONTROLS = st.builds(
    Control,
    kind=st.sampled_from(KINDS),
    name=NAME,
    value=st.none() | VALUES,
    disabled=st.booleans(),
    checked=st.booleans(),
    fieldset=st.booleans(),
    options=st.lists(st.tuples(VALUES, st.booleans(), st.booleans()), max_size=3),
)


def model(controls: list[Control], click: bool) -> list[tuple[str, FieldValue]]:
    """The entries the standard gives for these controls."""
    buttons = [c for c in controls if c.kind in ("submit", "button")]
    submitter = buttons[0] if click and buttons else None
    radios = {c.name: c for c in controls if c.kind == "radio" and c.checked and c.name}
    entries: list[tuple[str, FieldValue]] = []
    for c in controls:
        if c.disabled or c.fieldset or not c.name:
            continue
        if c.kind in ("submit", "button", "reset") and c is not submitter:
            continue
        if c.kind == "checkbox" and not c.checked:
            continue
        if c.kind == "radio" and radios.get(c.name) is not c:
            continue
        if c.kind == "select":
            chosen = [o for o in c.options if o[1]][-1:]
            if not chosen:
                chosen = [o for o in c.options if not o[2]][:1]
            entries.extend((c.name, v) for v, _, d in chosen if not d)
        elif c.kind in ("checkbox", "radio"):
            entries.append((c.name, "on" if c.value is None else c.value))
        elif c.kind == "file":
            entries.append((c.name, FormFile("")))
        else:
            entries.append((c.name, c.value or ""))
    return entries


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(CONTROLS, max_size=8), st.booleans())
def test_random_forms_give_the_modelled_entries(controls: list[Control], click: bool) -> None:
    markup = "<form>" + "".join(c.html() for c in controls) + "</form>"
    result = form_submission(markup, url=URL, click=click)
    assert list(result.fields) == model(controls, click), markup
