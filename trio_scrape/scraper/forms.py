"""HTML form submission: the request a browser sends when a form of a page is submitted.

:func:`form_submission` follows the HTML Living Standard, section 4.10.21 "Form submission":

1. **The form and its submitter.** The form is chosen by CSS selector or position; the
   submitter is the submit button clicked, by default the form's *default button* (the first
   submit button in tree order: what a browser clicks when Enter is pressed in a field,
   "implicit submission"), or none (``form.submit()``).
2. **Method, action, enctype** ("form submission attributes", "form submission
   algorithm"): the form's ``method``/``action``/``enctype``, overridden by the
   submitter's ``formmethod``/``formaction``/``formenctype``. An empty or missing action
   is the document's URL; any other is resolved against the document's base URL
   (``<base href>``) exactly as the page's links are (:mod:`trio_scrape.model.urls`).
   ``method=dialog`` submits nothing.
3. **The encoding** ("picking an encoding for the form"): the first encoding of
   ``accept-charset`` that is known, else the page's; UTF-16/32 become UTF-8.
4. **The entry list** ("constructing the entry list"): the form's submittable
   controls in tree order (those inside it and those outside that name it with ``form=``),
   minus the disabled ones (also inside a disabled ``<fieldset>``, except in its first
   ``<legend>``), those inside a ``<datalist>``, buttons other than the submitter, unchecked
   checkboxes and radios, and nameless ones; each gives ``(name, value)``: selected options,
   ``on`` for a checked box without value, ``name.x``/``name.y`` for a clicked image button,
   an empty file for a file input, the encoding for a hidden ``_charset_``, a ``dirname``
   entry, and otherwise the control's value as the standard sanitises it.
5. **Serialisation**: a GET puts the entries in the action's query (replacing it) with the
   ``application/x-www-form-urlencoded`` serializer (URL standard 5.2); a POST sends them as
   its body, encoded as the enctype says: urlencoded, the "multipart/form-data encoding
   algorithm" or the "text/plain encoding algorithm". Characters the encoding cannot
   represent are written ``&#NNNN;`` (the encoder's "html" error mode).

Scrapy's ``FormRequest.from_response`` differs from browsers in places; this module follows
the browser (the comments say where).
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, TypeAlias
from urllib.parse import quote_from_bytes

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from ..errors import TrioScrapeError
from ..model.page import Page
from ..model.parse import browser_codec
from ..model.tree import Tree
from ..model.urls import browser_url, document_base, resolve_links

__all__ = [
    "FieldValue",
    "FieldValues",
    "FormError",
    "FormFile",
    "FormSubmission",
    "form_submission",
]


class FormError(TrioScrapeError, ValueError):
    """A form cannot be submitted as asked: no form matches, the index is out of range, the
    button to click is not found (or is ambiguous, or disabled), a value names no field
    (``strict``), the form's method is ``dialog``, or its action is not an http(s) URL. The
    message says which."""


@dataclasses.dataclass(frozen=True, slots=True)
class FormFile:
    """A file for a file field: sent as a file part of a ``multipart/form-data`` body; in a
    urlencoded or text/plain body (and a GET's query) only its ``filename`` is sent, as
    browsers do."""

    filename: str
    content_type: str = "application/octet-stream"
    data: bytes = b""


#: The value of one entry.
FieldValue: TypeAlias = str | FormFile
#: What ``values`` may give a field: a value, several (a multi-select, checkboxes), or None to
#: remove the field.
FieldValues: TypeAlias = FieldValue | Sequence[FieldValue] | None


@dataclasses.dataclass(frozen=True, slots=True)
class FormSubmission:
    """The request a browser would send for a form.

    ``method`` is ``"GET"`` or ``"POST"``; ``url`` the absolute browser URL to request (for
    a GET, with the form data as its query, which replaces the action's own query: a form
    with no entries gives a URL ending in ``?``, as in browsers); ``enctype`` how the data
    is encoded (always ``application/x-www-form-urlencoded`` for a GET); ``fields`` the entry
    list, in order, names and string values with their newlines as sent (CRLF); ``body``
    the POST body (None for a GET); ``headers`` the ``Content-Type`` of a POST
    (``multipart/form-data; boundary=...`` for multipart); ``encoding`` the Python codec
    the data was encoded with.
    """

    method: Literal["GET", "POST"]
    url: str
    enctype: str
    fields: tuple[tuple[str, FieldValue], ...]
    body: bytes | None
    headers: dict[str, str] = dataclasses.field(default_factory=dict, hash=False)
    encoding: str = "utf-8"


URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
TEXT_PLAIN = "text/plain"
_ENCTYPES = (URLENCODED, MULTIPART, TEXT_PLAIN)
_CONTROLS = "form, input, button, select, textarea"
_TABLE_PARTS = frozenset(("table", "tbody", "thead", "tfoot", "tr"))
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ASCII_WHITESPACE = "\t\n\f\r "
_NEWLINES = re.compile(r"\r\n|\r|\n")
_WHITESPACE_RUN = re.compile(r"[\t\n\f\r ]+")
_INPUT_TYPES = frozenset(("hidden", "text", "search", "tel", "url", "email", "password",
                          "date", "month", "week", "time", "datetime-local", "number", "range",
                          "color", "checkbox", "radio", "file", "submit", "image", "reset",
                          "button"))  # fmt: skip
_BUTTON_INPUTS = frozenset(("submit", "image", "reset", "button"))
# The types whose value a dirname entry describes (auto-directionality form-associated).
_DIRNAME_TYPES = frozenset(("text", "search", "tel", "url", "email", "password", "hidden",
                            "submit", "reset", "button", "textarea"))  # fmt: skip


def form_submission(
    source: Page | LexborHTMLParser | str,
    *,
    url: str | None = None,
    encoding: str | None = None,
    selector: str | None = None,
    index: int = 0,
    values: Mapping[str, FieldValues] | Iterable[tuple[str, FieldValues]] | None = None,
    strict: bool = False,
    clicked: str | None = None,
    clicked_name: str | None = None,
    clicked_value: str | None = None,
    click: bool = True,
    coordinates: tuple[int, int] = (0, 0),
    boundary: str | None = None,
) -> FormSubmission:
    """The request a browser sends to submit a form of a page.

    Args:
        source: a crawled :class:`~trio_scrape.Page` (its ``html``, ``encoding`` and final
            URL are used), a parsed tree, or HTML text.
        url: the document's URL: required for a tree or text, overrides the page's.
        encoding: the document's character encoding (Python codec name or WHATWG label);
            default the page's, else UTF-8.
        selector: a CSS selector for the form: the forms among the matches, or the forms
            around matched elements (``input[name=q]`` chooses the form of that field).
            Default: every ``<form>`` of the page.
        index: which of those forms, in document order (negative counts from the end).
        values: fields to set, a mapping or a sequence of ``(name, value)`` pairs: a value
            replaces the field's entries where they stand (where its control stands when it
            had none: an unchecked checkbox), a list gives several entries (a multi-select,
            checkboxes), ``None`` removes the field, a name the form lacks is added at the
            end. Pairs with the same name are gathered into one list.
        strict: refuse ``values`` for names that no control of the form has.
        clicked: a CSS selector for the submit button to click.
        clicked_name: choose the submit button by its ``name`` (with ``clicked`` and
            ``clicked_value``, all that are given must match).
        clicked_value: choose the submit button by its ``value``.
        click: False to submit with no button, as ``form.submit()`` does. By default the
            default button is clicked: the first submit button of the form (``<button>``
            without a type or of type submit, ``<input type=submit>`` or ``image``) in tree
            order, as Scrapy does; the standard agrees, since pressing Enter in a field
            clicks that button. A disabled default button sends nothing of its own (a
            browser would refuse to submit): the form is submitted without a submitter.
        coordinates: where an image button is clicked (``name.x``, ``name.y``).
        boundary: the multipart boundary; default a random one.

    Raises:
        FormError: no form, no form matching ``selector``, ``index`` out of range, no submit
            button matching ``clicked``/``clicked_name``/``clicked_value`` (or more than
            one, or a disabled one, or a choice with ``click=False``), a ``strict`` value
            for an unknown field, a ``dialog`` method, an action that is not an http(s)
            URL, an invalid selector or ``boundary``, a tree or text without ``url``.
        TypeError: a value in ``values`` is not a str, a :class:`FormFile`, a sequence of
            them or None.
    """
    tree, document_url, page_encoding = _document(source, url, encoding)
    form = _choose_form(tree, selector, index)
    controls = _controls_of(tree, form)
    submitter = _choose_submitter(
        tree, controls, clicked=clicked, name=clicked_name, value=clicked_value, click=click
    )
    form_attrs = form.attributes
    sub_attrs = submitter.attributes if submitter is not None else {}
    method = _enumerated(
        sub_attrs["formmethod"] if "formmethod" in sub_attrs else form_attrs.get("method"),
        ("get", "post", "dialog"),
        "get",
    )
    if method == "dialog":
        raise FormError("the form's method is dialog: it closes a dialog, nothing is sent")
    enctype = _enumerated(
        sub_attrs["formenctype"] if "formenctype" in sub_attrs else form_attrs.get("enctype"),
        _ENCTYPES,
        URLENCODED,
    )
    # The submitter's formaction, even empty (then the document's URL), else the form's.
    action = sub_attrs.get("formaction") if "formaction" in sub_attrs else form_attrs.get("action")
    target = _action_url(tree, document_url, page_encoding, action or "")
    codec = _pick_encoding(form_attrs.get("accept-charset"), page_encoding)
    entries, slots, names = _entry_list(controls, submitter, codec, coordinates)
    if values is not None:
        entries = _apply_values(entries, slots, names, values, strict)
    fields = tuple(entries)
    if method == "get":
        query = _urlencode(fields, codec)
        return FormSubmission("GET", target.partition("?")[0] + "?" + query, URLENCODED,
                              fields, None, {}, codec)  # fmt: skip
    if enctype == MULTIPART:
        body, boundary = _multipart(fields, codec, boundary)
        content_type = f"{MULTIPART}; boundary={boundary}"
    elif enctype == TEXT_PLAIN:
        body = _text_plain(fields, codec)
        content_type = TEXT_PLAIN
    else:
        body = _urlencode(fields, codec).encode("ascii")
        content_type = URLENCODED
    return FormSubmission("POST", target, enctype, fields, body, {"Content-Type": content_type},
                          codec)  # fmt: skip


# The document, the form, its controls.


def _document(
    source: Page | LexborHTMLParser | str, url: str | None, encoding: str | None
) -> tuple[LexborHTMLParser, str, str | None]:
    if isinstance(source, Page):
        tree = source.html
        if tree is None:
            if source.text is None:
                raise FormError(f"the page {source.url} has no HTML")
            tree = Tree(source.text)
        return tree, url or source.final_url or source.url, encoding or source.encoding
    if url is None:
        raise FormError("url (the document's URL) is needed to resolve the form's action")
    tree = Tree(source) if isinstance(source, str) else source
    return tree, url, encoding


def _css(root: LexborHTMLParser | LexborNode, selector: str) -> list[LexborNode]:
    try:
        return list(root.css(selector))
    except SelectolaxError:
        raise FormError(f"invalid CSS selector: {selector!r}") from None


def _form_of(node: LexborNode | None) -> LexborNode | None:
    """``node`` if it is a form, else its nearest form ancestor."""
    while node is not None and node.tag != "form":
        node = node.parent
    return node


def _choose_form(tree: LexborHTMLParser, selector: str | None, index: int) -> LexborNode:
    if selector is None:
        forms = list(tree.tags("form"))
        what = "the page has"
        if not forms:
            raise FormError("the page has no <form>")
    else:
        forms, seen = [], set()
        for match in _css(tree, selector):
            form = _form_of(match)
            if form is not None and form.mem_id not in seen:
                seen.add(form.mem_id)
                forms.append(form)
        what = f"{selector!r} matches"
        if not forms:
            raise FormError(f"no form matches the selector {selector!r}")
    if not -len(forms) <= index < len(forms):
        raise FormError(f"form index {index} is out of range: {what} {len(forms)} form(s)")
    return forms[index]


def _controls_of(tree: LexborHTMLParser, form: LexborNode) -> list[LexborNode]:
    """The submittable elements whose form owner is ``form``, in tree order (HTML
    "association of controls and forms").

    A control with a ``form`` attribute belongs to the element with that id if it is a form
    (to none otherwise); any other to its nearest form ancestor. The parser also gives a form
    the controls that follow it while its "form element pointer" is set, when they are not
    inside it: ``<table><form><tr><td><input>`` leaves the form empty in the table. Such a
    form here owns the controls after it in the same table, up to the next form (the
    ``</form>`` position is not in the tree: an approximation of the pointer).
    """
    by_id: dict[str, LexborNode] | None = None
    own = form.mem_id
    controls = []
    pointer: tuple[int, int] | None = None  # (form, table) of a form left empty in a table
    for node in tree.css(_CONTROLS):
        if node.tag == "form":
            pointer = None
            parent = node.parent
            if parent is not None and parent.tag in _TABLE_PARTS and node.child is None:
                table: LexborNode | None = parent
                while table is not None and table.tag != "table":
                    table = table.parent
                if table is not None:
                    pointer = (node.mem_id, table.mem_id)
            continue
        attrs = node.attributes
        if "form" in attrs:
            if by_id is None:
                by_id = {}
                for element in tree.css("[id]"):
                    by_id.setdefault(element.attributes.get("id") or "", element)
            owner = by_id.get(attrs.get("form") or "")
            if owner is not None and owner.tag == "form" and owner.mem_id == own:
                controls.append(node)
            continue
        ancestor = node.parent
        tables = []
        while ancestor is not None and ancestor.tag != "form":
            if ancestor.tag == "table":
                tables.append(ancestor.mem_id)
            ancestor = ancestor.parent
        if ancestor is not None:
            if ancestor.mem_id == own:
                controls.append(node)
        elif pointer is not None and pointer[0] == own and pointer[1] in tables:
            controls.append(node)
    return controls


def _input_type(node: LexborNode) -> str:
    """The state of an ``<input>``'s type (unknown types are text), or the tag's name."""
    if node.tag != "input":
        return node.tag or ""
    kind = (node.attributes.get("type") or "text").translate(_ASCII_LOWER)
    return kind if kind in _INPUT_TYPES else "text"


def _button_type(node: LexborNode) -> str:
    kind = (node.attributes.get("type") or "").translate(_ASCII_LOWER)
    return kind if kind in ("reset", "button") else "submit"


def _is_button(node: LexborNode) -> bool:
    return node.tag == "button" or _input_type(node) in _BUTTON_INPUTS


def _is_submit_button(node: LexborNode) -> bool:
    if node.tag == "button":
        return _button_type(node) == "submit"
    return node.tag == "input" and _input_type(node) in ("submit", "image")


def _is_disabled(node: LexborNode) -> bool:
    """A disabled control: its own ``disabled``, or inside a disabled ``<fieldset>`` but not
    in that fieldset's first ``<legend>`` child."""
    if "disabled" in node.attributes:
        return True
    child, parent = node, node.parent
    while parent is not None:
        if parent.tag == "fieldset" and "disabled" in parent.attributes:
            legend = parent.child
            while legend is not None and legend.tag != "legend":
                legend = legend.next
            if legend is None or legend.mem_id != child.mem_id:
                return True
        child, parent = parent, parent.parent
    return False


def _in_datalist(node: LexborNode) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag == "datalist":
            return True
        parent = parent.parent
    return False


def _choose_submitter(
    tree: LexborHTMLParser,
    controls: list[LexborNode],
    *,
    clicked: str | None,
    name: str | None,
    value: str | None,
    click: bool,
) -> LexborNode | None:
    chosen = clicked is not None or name is not None or value is not None
    if not click:
        if chosen:
            raise FormError("click=False submits with no button: clicked* cannot choose one")
        return None
    buttons = [node for node in controls if _is_submit_button(node)]
    if not chosen:
        # The default button. Scrapy clicks the first clickable element too (including an
        # image button, for which a browser sends name.x/name.y, not name=value).
        if not buttons or _is_disabled(buttons[0]):
            return None
        return buttons[0]
    candidates = buttons
    described = []
    if clicked is not None:
        matched = {node.mem_id for node in _css(tree, clicked)}
        candidates = [node for node in candidates if node.mem_id in matched]
        described.append(f"selector {clicked!r}")
    if name is not None:
        candidates = [n for n in candidates if n.attributes.get("name") == name]
        described.append(f"name {name!r}")
    if value is not None:
        candidates = [n for n in candidates if (n.attributes.get("value") or "") == value]
        described.append(f"value {value!r}")
    what = ", ".join(described)
    if not candidates:
        raise FormError(f"no submit button of the form matches {what}")
    if len(candidates) > 1:
        found = ", ".join(_describe(node) for node in candidates)
        raise FormError(f"{len(candidates)} submit buttons match {what}: {found}")
    if _is_disabled(candidates[0]):
        raise FormError(f"the submit button {_describe(candidates[0])} is disabled")
    return candidates[0]


def _describe(node: LexborNode) -> str:
    attrs = " ".join(f'{k}="{v}"' if v else k for k, v in node.attributes.items())
    return f"<{node.tag}{' ' if attrs else ''}{attrs}>"


def _enumerated(value: str | None, allowed: Sequence[str], default: str) -> str:
    """An enumerated attribute's state: an ASCII case-insensitive keyword, else the
    default (missing and invalid alike, for method/enctype and formmethod/formenctype)."""
    if value is None:
        return default
    value = value.translate(_ASCII_LOWER)
    return value if value in allowed else default


def _action_url(
    tree: LexborHTMLParser, document_url: str, encoding: str | None, action: str
) -> str:
    """The browser URL a form submits to: an empty action is the document's URL (not the
    base URL: Scrapy uses the ``<base href>`` for a missing action), any other is resolved
    against the document's base URL, as the page's links are."""
    if not action:
        try:
            return browser_url(document_url)
        except ValueError as exc:
            raise FormError(f"the document's URL cannot be submitted to: {exc}") from None
    base_href = None
    for node in tree.tags("base"):
        if "href" in node.attributes:
            base_href = node.attributes.get("href")
            break
    base = document_base(document_url, base_href)
    links, invalid = resolve_links(base, [action], encoding=_url_codec(encoding))
    if not links:
        why = "does not parse" if invalid else "is not an http(s) URL"
        raise FormError(f"the form's action {action!r} {why}")
    return links[0]


# Encodings.

# WHATWG names of Python codecs, for the value of a hidden _charset_ field.
_WHATWG_NAMES = {
    "utf-8": "UTF-8",
    "gbk": "GBK",
    "gb18030": "gb18030",
    "big5hkscs": "Big5",
    "cp932": "Shift_JIS",
    "euc_jp": "EUC-JP",
    "iso2022_jp": "ISO-2022-JP",
    "cp949": "EUC-KR",
    "koi8-r": "KOI8-R",
    "koi8-u": "KOI8-U",
    "mac-roman": "macintosh",
    "mac-cyrillic": "x-mac-cyrillic",
}


def _output_codec(name: str | None) -> str:
    """WHATWG "get an output encoding": UTF-16 and UTF-32 submit as UTF-8."""
    if name is None or name.startswith(("utf-16", "utf-32", "utf_16", "utf_32")):
        return "utf-8"
    return name


def _url_codec(encoding: str | None) -> str | None:
    """The document's encoding as :mod:`~trio_scrape.model.urls` takes it."""
    return browser_codec(encoding) or encoding


def _pick_encoding(accept_charset: str | None, page_encoding: str | None) -> str:
    """HTML "picking an encoding for the form": the first known label of
    ``accept-charset`` (UTF-8 if it names none), else the document's encoding."""
    if accept_charset is None:
        return _output_codec(browser_codec(page_encoding))
    for label in accept_charset.split():
        codec = browser_codec(label)
        if codec is not None:
            return _output_codec(codec)
    return "utf-8"


def _whatwg_name(codec: str) -> str:
    if codec in _WHATWG_NAMES:
        return _WHATWG_NAMES[codec]
    if codec.startswith("cp12"):
        return "windows-" + codec[2:]
    if codec == "cp874":
        return "windows-874"
    if codec.startswith("iso8859-"):
        return "ISO-8859-" + codec[8:]
    return codec


# The entry list.


def _scalar(text: str) -> str:
    """A scalar value string ("create an entry"): as from a UTF-16 string, a surrogate pair
    is its character and a lone surrogate U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _crlf(text: str) -> str:
    """Every CR, LF and CRLF as CRLF, as each of the serialisations normalises them."""
    return _NEWLINES.sub("\r\n", text) if "\r" in text or "\n" in text else text


def _entry(name: str, value: FieldValue) -> tuple[str, FieldValue]:
    name = _crlf(_scalar(name))
    if isinstance(value, str):
        return name, _crlf(_scalar(value))
    return name, value


def _entry_list(
    controls: list[LexborNode], submitter: LexborNode | None, codec: str, xy: tuple[int, int]
) -> tuple[list[tuple[str, FieldValue]], dict[str, int], set[str]]:
    """HTML "constructing the entry list". Also returns, for each control name, the
    position in the list where its first control stands (where ``values`` puts a field that
    has no entry), and every name a control of the form gives (for ``strict``)."""
    entries: list[tuple[str, FieldValue]] = []
    slots: dict[str, int] = {}
    names: set[str] = set()
    # A radio group keeps one checked radio: the last with ``checked`` in tree order (the
    # parser checks each in turn and unchecks the others). Scrapy sends them all.
    checked_radio: dict[str, int] = {}
    for node in controls:
        attrs = node.attributes
        if _input_type(node) == "radio" and "checked" in attrs and attrs.get("name"):
            checked_radio[attrs.get("name") or ""] = node.mem_id
    submitter_id = submitter.mem_id if submitter is not None else None
    for node in controls:
        attrs = node.attributes
        kind = _input_type(node)
        name = attrs.get("name") or ""
        if kind == "image":
            prefix = name + "." if name else ""
            names.update((prefix + "x", prefix + "y"))
        elif name:
            names.add(name)
            slots.setdefault(name, len(entries))
            if attrs.get("dirname"):
                names.add(attrs.get("dirname") or "")
        if _in_datalist(node) or _is_disabled(node):
            continue
        if _is_button(node) and node.mem_id != submitter_id:
            continue
        if kind == "checkbox" and "checked" not in attrs:
            continue
        if kind == "radio" and (not name or checked_radio.get(name) != node.mem_id):
            continue
        if kind == "image":
            # Scrapy sends name=value for an image button; browsers send the click point.
            entries.append(_entry(prefix + "x", str(xy[0])))
            entries.append(_entry(prefix + "y", str(xy[1])))
            continue
        if not name:
            continue
        if kind == "select":
            entries.extend(_entry(name, option) for option in _selected_options(node))
            continue
        value: FieldValue
        if kind in ("checkbox", "radio"):
            value = attrs.get("value") or "" if "value" in attrs else "on"
        elif kind == "file":
            value = FormFile("")
        elif kind == "hidden" and name.translate(_ASCII_LOWER) == "_charset_":
            value = _whatwg_name(codec)
        elif kind == "textarea":
            value = node.text(deep=True)  # the parser dropped a first newline
        else:
            value = _sanitize(kind, attrs)
        entries.append(_entry(name, value))
        dirname = attrs.get("dirname")
        if dirname and kind in _DIRNAME_TYPES and isinstance(value, str):
            entries.append(_entry(dirname, _directionality(node, value)))
    return entries, slots, names


def _option_disabled(option: LexborNode) -> bool:
    if "disabled" in option.attributes:
        return True
    parent = option.parent
    return parent is not None and parent.tag == "optgroup" and "disabled" in parent.attributes


def _option_value(option: LexborNode) -> str:
    if "value" in option.attributes:
        return option.attributes.get("value") or ""
    return _strip_collapse(option.text(deep=True))


def _strip_collapse(text: str) -> str:
    """Strip and collapse ASCII whitespace."""
    return " ".join(_WHITESPACE_RUN.split(text.strip(_ASCII_WHITESPACE)))


def _display_size(select: LexborNode) -> int:
    match = re.match(r"[\t\n\f\r ]*\+?([0-9]+)", select.attributes.get("size") or "")
    if match is not None and int(match.group(1)) > 0:
        return int(match.group(1))
    return 4 if "multiple" in select.attributes else 1


def _selected_options(select: LexborNode) -> list[str]:
    """The values of a select's selected, enabled options (the "selectedness setting
    algorithm": a single select keeps its last ``selected`` option, or, shown as a drop-down,
    selects its first enabled one when none is; Scrapy takes the first option even if it is
    disabled)."""
    options = [node for node in select.css("option") if not _in_nested_datalist(node, select)]
    selected = [node for node in options if "selected" in node.attributes]
    if "multiple" not in select.attributes:
        if len(selected) > 1:
            selected = selected[-1:]
        elif not selected and _display_size(select) == 1:
            selected = [node for node in options if not _option_disabled(node)][:1]
    return [_option_value(node) for node in selected if not _option_disabled(node)]


def _in_nested_datalist(option: LexborNode, select: LexborNode) -> bool:
    parent = option.parent
    while parent is not None and parent.mem_id != select.mem_id:
        if parent.tag == "datalist":
            return True
        parent = parent.parent
    return False


def _directionality(node: LexborNode, value: str) -> str:
    """Either "ltr" or "rtl": the element's ``dir`` (``auto``: its value's first strong
    character), else its nearest ancestor's, else "ltr"."""
    element: LexborNode | None = node
    while element is not None:
        direction = (element.attributes.get("dir") or "").translate(_ASCII_LOWER)
        if direction in ("ltr", "rtl"):
            return direction
        if direction == "auto" and element.mem_id == node.mem_id:
            for char in value:
                bidi = unicodedata.bidirectional(char)
                if bidi == "L":
                    return "ltr"
                if bidi in ("R", "AL"):
                    return "rtl"
            return "ltr"
        element = element.parent
    return "ltr"


# Values as the standard's "value sanitization algorithm" of each input type leaves them.

_FLOAT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_COLOR = re.compile(r"#[0-9A-Fa-f]{6}")
_DATE = re.compile(r"([0-9]{4,})-([0-9]{2})-([0-9]{2})")
_MONTH = re.compile(r"([0-9]{4,})-([0-9]{2})")
_WEEK = re.compile(r"([0-9]{4,})-W([0-9]{2})")
_TIME = re.compile(r"([0-9]{2}):([0-9]{2})(?::([0-9]{2})(\.[0-9]{1,3})?)?")


def _sanitize(kind: str, attrs: Mapping[str, str | None]) -> str:
    """The value of a text-like, numeric, date or color input, from its ``value``."""
    value = attrs.get("value") or ""
    if kind in ("text", "search", "tel", "password"):
        return value.replace("\r", "").replace("\n", "")
    if kind == "url":
        return value.replace("\r", "").replace("\n", "").strip(_ASCII_WHITESPACE)
    if kind == "email":
        value = value.replace("\r", "").replace("\n", "")
        if "multiple" in attrs:
            return ",".join(part.strip(_ASCII_WHITESPACE) for part in value.split(","))
        return value.strip(_ASCII_WHITESPACE)
    if kind == "number":
        return value if _FLOAT.fullmatch(value) else ""
    if kind == "range":
        return _range_value(value, attrs)
    if kind == "color":
        return value.lower() if _COLOR.fullmatch(value) else "#000000"
    if kind == "date":
        return value if _valid_date(value) else ""
    if kind == "month":
        match = _MONTH.fullmatch(value)
        ok = match is not None and int(match.group(1)) > 0 and 1 <= int(match.group(2)) <= 12
        return value if ok else ""
    if kind == "week":
        match = _WEEK.fullmatch(value)
        ok = match is not None and 1 <= int(match.group(2)) <= _weeks(int(match.group(1)))
        return value if ok and int(match.group(1) if match else 0) > 0 else ""
    if kind == "time":
        return value if _valid_time(value) else ""
    if kind == "datetime-local":
        return _datetime_local(value)
    return value  # hidden, and the buttons: the value attribute as written


def _valid_date(value: str) -> bool:
    match = _DATE.fullmatch(value)
    if match is None:
        return False
    year, month, day = (int(part) for part in match.groups())
    if year < 1 or not 1 <= month <= 12:
        return False
    days = [31, 29 if _leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    return 1 <= day <= days


def _leap(year: int) -> bool:
    return year % 400 == 0 or (year % 4 == 0 and year % 100 != 0)


def _weeks(year: int) -> int:
    """ISO weeks in a year: 53 when it starts on a Thursday, or a Wednesday in a leap year."""
    if year < 1:
        return 0
    y = year - 1
    jan1 = (1 + 5 * (y % 4) + 4 * (y % 100) + 6 * (y % 400)) % 7  # 0 Sunday (Gauss)
    return 53 if jan1 == 4 or (jan1 == 3 and _leap(year)) else 52


def _valid_time(value: str) -> bool:
    match = _TIME.fullmatch(value)
    if match is None:
        return False
    return int(match.group(1)) < 24 and int(match.group(2)) < 60 and int(match.group(3) or 0) < 60


def _datetime_local(value: str) -> str:
    """A valid local date and time, normalised (``T``, seconds and fraction only if not
    zero), else empty."""
    for separator in ("T", " "):
        date, found, time = value.partition(separator)
        if found and _valid_date(date) and _valid_time(time):
            match = _TIME.fullmatch(time)
            assert match is not None
            hours, minutes, seconds, fraction = match.groups()
            text = f"{date}T{hours}:{minutes}"
            fraction = (fraction or "").rstrip("0").rstrip(".")
            if (seconds and seconds != "00") or fraction:
                text += f":{seconds}{fraction}"
            return text
    return ""


def _range_value(value: str, attrs: Mapping[str, str | None]) -> str:
    """A range's value: a number between min (0) and max (100) on a step (1) from min,
    the default (halfway) when it is not a number."""

    def number(name: str, default: float) -> float:
        text = attrs.get(name) or ""
        return float(text) if _FLOAT.fullmatch(text) else default

    low, high = number("min", 0.0), number("max", 100.0)
    if high < low:
        high = low
    step_text = (attrs.get("step") or "").translate(_ASCII_LOWER)
    step = float(step_text) if _FLOAT.fullmatch(step_text) and float(step_text) > 0 else 1.0
    if step_text == "any":
        step = 0.0
    current = float(value) if _FLOAT.fullmatch(value) else low + (high - low) / 2
    current = min(max(current, low), high)
    if step:
        steps = (current - low) / step
        rounded = low + int(steps + 0.5) * step  # the nearest step; up on a tie
        while rounded > high:
            rounded -= step
        current = rounded
    return str(int(current)) if current == int(current) else repr(current)


# The values the caller gives.


def _apply_values(
    entries: list[tuple[str, FieldValue]],
    slots: dict[str, int],
    names: set[str],
    values: Mapping[str, FieldValues] | Iterable[tuple[str, FieldValues]],
    strict: bool,
) -> list[tuple[str, FieldValue]]:
    given: dict[str, list[FieldValue] | None] = {}
    pairs = values.items() if isinstance(values, Mapping) else values
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2 or not isinstance(pair[0], str):
            raise TypeError(f"values must be a mapping or (name, value) pairs, not {pair!r}")
        name, value = pair
        items = _as_list(name, value)
        if items is None or name not in given or given[name] is None:
            given[name] = items
        else:
            given[name] = [*(given[name] or []), *items]
    if strict:
        unknown = [name for name in given if name not in names]
        if unknown:
            raise FormError(f"the form has no field named {', '.join(map(repr, unknown))}")
    at: dict[int, list[str]] = {}
    extra = []
    for name in given:
        if name in slots:
            at.setdefault(slots[name], []).append(name)
        elif any(entry[0] == name for entry in entries):  # name.x, a dirname value
            first = next(i for i, entry in enumerate(entries) if entry[0] == name)
            at.setdefault(first, []).append(name)
        else:
            extra.append(name)
    result: list[tuple[str, FieldValue]] = []
    for position in range(len(entries) + 1):
        for name in at.get(position, ()):
            result.extend(_entry(name, item) for item in given[name] or ())
        if position < len(entries) and entries[position][0] not in given:
            result.append(entries[position])
    for name in extra:
        result.extend(_entry(name, item) for item in given[name] or ())
    return result


def _as_list(name: str, value: object) -> list[FieldValue] | None:
    if value is None:
        return None
    if isinstance(value, str | FormFile):
        return [value]
    if isinstance(value, Sequence) and all(isinstance(item, str | FormFile) for item in value):
        return list(value)
    raise TypeError(
        f"the value of {name!r} must be a str, a FormFile, a sequence of them or None, "
        f"not {value!r}"
    )


# Serialisations.


def _urlencode(fields: Iterable[tuple[str, FieldValue]], codec: str) -> str:
    """The ``application/x-www-form-urlencoded`` serializer (URL standard 5.2): names and
    values encoded in ``codec`` (``&#N;`` for what it cannot encode), every byte but ASCII
    alphanumerics and ``*-._`` percent-encoded, space as ``+``. A file is its name."""
    return "&".join(
        _form_escape(name, codec)
        + "="
        + _form_escape(value if isinstance(value, str) else value.filename, codec)
        for name, value in fields
    )


def _form_escape(text: str, codec: str) -> str:
    if text.isascii() and (text.isalnum() or not text):
        return text
    data = _scalar(text).encode(codec, "xmlcharrefreplace")
    # quote() keeps "~" (RFC 3986 unreserved); the form serializer escapes it.
    return quote_from_bytes(data, safe=" *").replace(" ", "+").replace("~", "%7E")


def _multipart_escape(text: str) -> str:
    return text.replace("\n", "%0A").replace("\r", "%0D").replace('"', "%22")


def _multipart(
    fields: Sequence[tuple[str, FieldValue]], codec: str, boundary: str | None
) -> tuple[bytes, str]:
    """HTML "multipart/form-data encoding algorithm" (RFC 7578): a part for each
    entry, its name (and a file's filename) in the Content-Disposition with LF, CR and
    ``"`` escaped as ``%0A``, ``%0D``, ``%22``; names and string values encoded in
    ``codec``; a file part with its Content-Type."""
    parts: list[tuple[bytes, bytes]] = []
    for name, value in fields:
        header = f'Content-Disposition: form-data; name="{_multipart_escape(name)}"'
        if isinstance(value, FormFile):
            if "\r" in value.content_type or "\n" in value.content_type:
                raise FormError(f"the content type of a file has a newline: {value!r}")
            header += f'; filename="{_multipart_escape(value.filename)}"'
            header += f"\r\nContent-Type: {value.content_type or 'application/octet-stream'}"
            data = value.data
        else:
            data = value.encode(codec, "xmlcharrefreplace")
        parts.append((header.encode(codec, "xmlcharrefreplace"), data))
    if boundary is None:
        while True:
            boundary = "----TrioScrapeFormBoundary" + secrets.token_hex(8)
            if not _collides(boundary, parts):
                break
    elif not re.fullmatch(r"[0-9A-Za-z'()+_,\-./:=?]{1,70}", boundary) or _collides(
        boundary, parts
    ):
        raise FormError(f"unusable multipart boundary {boundary!r}")
    marker = b"--" + boundary.encode("ascii")
    body = bytearray()
    for head, data in parts:
        body += marker + b"\r\n" + head + b"\r\n\r\n" + data + b"\r\n"
    body += marker + b"--\r\n"
    return bytes(body), boundary


def _collides(boundary: str, parts: list[tuple[bytes, bytes]]) -> bool:
    marker = boundary.encode("ascii")
    return any(marker in head or marker in data for head, data in parts)


def _text_plain(fields: Sequence[tuple[str, FieldValue]], codec: str) -> bytes:
    """HTML "text/plain encoding algorithm": ``name=value`` lines ending in CRLF, in
    ``codec``; a file is its name."""
    text = "".join(
        f"{name}={value if isinstance(value, str) else value.filename}\r\n"
        for name, value in fields
    )
    return text.encode(codec, "xmlcharrefreplace")
