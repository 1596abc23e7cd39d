"""form_submission: the request a browser sends for a form.

Many cases come from Scrapy's tests of ``FormRequest.from_response`` (the HTML and the fields
it expects); where Scrapy and the HTML standard disagree the test follows the browser and
says so.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from selectolax.lexbor import LexborHTMLParser

from trio_scrape.model.page import Page
from trio_scrape.scraper.forms import (
    FormError,
    FormFile,
    FormSubmission,
    form_submission,
)

URL = "http://example.com/this/list.html"


def submit(html: str, **kwargs: object) -> FormSubmission:
    kwargs.setdefault("url", URL)
    return form_submission(html, **kwargs)  # type: ignore[arg-type]


def pairs(result: FormSubmission, encoding: str = "utf-8") -> list[tuple[str, str]]:
    """The name/value pairs the server receives (query or urlencoded body)."""
    if result.method == "GET":
        query = result.url.partition("?")[2]
    else:
        assert result.body is not None
        query = result.body.decode("ascii")
    return parse_qsl(query, keep_blank_values=True, encoding=encoding)


# Methods, actions, URLs.


def test_post_form_with_hidden_fields_and_extra_values() -> None:
    result = submit(
        """<form action="post.php" method="POST">
        <input type="hidden" name="test" value="val1">
        <input type="hidden" name="test" value="val2">
        <input type="hidden" name="test2" value="xxx">
        </form>""",
        values={"one": ["two", "three"], "six": "seven"},
    )
    assert result.method == "POST"
    assert result.url == "http://example.com/this/post.php"
    assert result.headers == {"Content-Type": "application/x-www-form-urlencoded"}
    assert result.body == b"test=val1&test=val2&test2=xxx&one=two&one=three&six=seven"


def test_get_form_puts_the_data_in_the_query_replacing_the_actions() -> None:
    result = submit(
        """<form action="get.php?stale=1#top" method="GET">
        <input type="hidden" name="test" value="val1">
        <input type="hidden" name="test2" value="xxx">
        </form>"""
    )
    assert result.method == "GET"
    assert result.body is None and result.headers == {}
    assert result.url == "http://example.com/this/get.php?test=val1&test2=xxx"


def test_get_form_without_entries_ends_in_a_question_mark() -> None:
    # Browsers set the query to the (empty) serialisation; Scrapy drops the "?".
    result = submit('<form action="/app"></form>')
    assert result.url == "http://example.com/app?"
    assert result.fields == ()


def test_method_is_case_insensitive_and_invalid_means_get() -> None:
    assert submit('<form method="PoSt"></form>').method == "POST"
    assert submit('<form method="UNKNOWN"></form>').method == "GET"
    assert submit("<form></form>").method == "GET"


def test_dialog_method_submits_nothing() -> None:
    # Scrapy turns an unknown method into GET; a browser closes the dialog and sends nothing.
    with pytest.raises(FormError, match="dialog"):
        submit('<form method="dialog"><input name="a"></form>')


def test_base_href_resolves_the_action() -> None:
    result = submit(
        """<html><head><base href=" http://b.com/"></head>
        <body><form action="test_form"></form></body></html>""",
        url="http://a.com/",
    )
    assert result.url == "http://b.com/test_form?"


def test_missing_or_empty_action_is_the_documents_url_not_the_base() -> None:
    # HTML: an empty action is "the URL of the form document". Scrapy uses <base href>.
    html = '<base href="http://b.com/dir/"><form {}><input name="q" value="1"></form>'
    for action in ("", 'action=""'):
        result = submit(html.format(action), url="http://a.com/page?x=1#frag")
        assert result.url == "http://a.com/page?q=1"


def test_spaces_in_action_are_stripped() -> None:
    result = submit('<body><form action=" path\n"></form></body>', url="http://example.com")
    assert result.url == "http://example.com/path?"


def test_action_with_another_scheme_is_refused() -> None:
    with pytest.raises(FormError, match="not an http"):
        submit('<form action="mailto:a@example.com"></form>')
    with pytest.raises(FormError, match="does not parse"):
        submit('<form action="http://[bad/"></form>')


def test_a_tree_or_text_needs_the_documents_url() -> None:
    with pytest.raises(FormError, match="url"):
        form_submission("<form></form>")


def test_a_page_gives_its_tree_final_url_and_encoding() -> None:
    html = '<form method="post"><input name="p" value="£"></form>'
    page = Page(url="http://example.com/start", final_url="http://example.com/moved/")
    page.html, page.encoding = LexborHTMLParser(html), "cp1252"
    result = form_submission(page)
    assert result.url == "http://example.com/moved/"
    assert result.body == b"p=%A3"
    assert result.encoding == "cp1252"
    text_only = Page(url="http://example.com/t", text=html)
    assert form_submission(text_only).body == b"p=%C2%A3"
    with pytest.raises(FormError, match="no HTML"):
        form_submission(Page(url="http://example.com/empty"))


def test_a_parsed_tree_is_accepted() -> None:
    tree = LexborHTMLParser('<form><input name="a" value="1"></form>')
    assert form_submission(tree, url="http://example.com/").url == "http://example.com/?a=1"


# Choosing the form.

TWO_FORMS = """
<form id="form1" name="form1" action="post.php" method="POST">
  <input type="hidden" name="one" value="1"><input type="hidden" name="two" value="2">
</form>
<form id="form2" name="form2" action="post2.php" method="POST">
  <input type="hidden" name="three" value="3"><input type="hidden" name="four" value="4">
</form>"""


def test_form_by_index_and_selector() -> None:
    assert pairs(submit(TWO_FORMS)) == [("one", "1"), ("two", "2")]
    assert pairs(submit(TWO_FORMS, index=1)) == [("three", "3"), ("four", "4")]
    assert pairs(submit(TWO_FORMS, index=-1)) == [("three", "3"), ("four", "4")]
    assert pairs(submit(TWO_FORMS, selector="form[name=form2]"))[0] == ("three", "3")
    assert pairs(submit(TWO_FORMS, selector="#form2"))[0] == ("three", "3")
    assert pairs(submit(TWO_FORMS, selector="form[action='post.php']"))[0] == ("one", "1")


def test_selector_of_an_element_inside_chooses_its_form() -> None:
    assert pairs(submit(TWO_FORMS, selector="input[name='four']"))[0] == ("three", "3")


def test_selector_matching_nothing_is_an_error() -> None:
    # Scrapy falls back to the first form for an unknown formname/formid.
    with pytest.raises(FormError, match="no form matches"):
        submit(TWO_FORMS, selector="form[name=form3]")
    with pytest.raises(FormError, match="no form matches"):
        submit(TWO_FORMS, selector="input[name='abc']")
    with pytest.raises(FormError, match="no form matches"):
        submit('<div id="outside"><p>x</p></div><form></form>', selector="#outside p")
    with pytest.raises(FormError, match="invalid CSS selector"):
        submit(TWO_FORMS, selector="[[")


def test_unicode_selector() -> None:
    html = '<form name="\u044a"></form>'
    assert submit(html, selector="form[name='\u044a']").fields == ()
    with pytest.raises(FormError, match="\u03b1"):
        submit(html, selector="form[name='\u03b1']")


def test_no_form_and_index_out_of_range() -> None:
    with pytest.raises(FormError, match="no <form>"):
        submit("<html></html>")
    with pytest.raises(FormError, match="index 2 is out of range: the page has 2"):
        submit(TWO_FORMS, index=2)
    with pytest.raises(FormError, match="index 1 is out of range"):
        submit(TWO_FORMS, selector="#form1", index=1)


def test_invalid_html5_form_after_body_end() -> None:
    result = submit(
        '<!DOCTYPE html><body></html><form><input type="text" name="foo" value="xxx">'
        "</form></body></html>",
        values={"bar": "buz"},
    )
    assert pairs(result) == [("foo", "xxx"), ("bar", "buz")]


def test_descendants_at_any_depth() -> None:
    result = submit(
        """<form><div><fieldset>
            <input type="text" name="i1"><select name="i2"><option value="v1" selected></select>
          </fieldset>
          <input type="radio" name="i3" value="i3v2" checked>
          <input type="checkbox" name="i4" value="i4v2" checked>
          <textarea name="i5"></textarea><input type="hidden" name="h1" value="h1v">
        </div><input type="hidden" name="h2" value="h2v"></form>"""
    )
    assert [name for name, _ in result.fields] == ["i1", "i2", "i3", "i4", "i5", "h1", "h2"]


def test_form_attribute_associates_controls_outside_the_form() -> None:
    result = submit(
        """<input name="before" value="b" form="f">
        <form id="f"><input name="inside" value="i"><input name="elsewhere" form="g"></form>
        <input name="after" value="a" form="f"><input name="free" value="x">
        <div id="g"></div><input name="bad" form="g">"""
    )
    # Tree order; a form= naming a non-form (or nothing) owns the control to no form.
    assert pairs(result) == [("before", "b"), ("inside", "i"), ("after", "a")]


def test_form_left_empty_in_a_table_owns_the_tables_controls() -> None:
    # The parser moves <form> out of the table row structure; the form element pointer still
    # gives it the controls that follow.
    html = """<table><form action="/t" method="post">
        <tr><td><input name="user" value="u"></td></tr>
        <tr><td><input type="submit" name="go" value="Go"></td></tr></form></table>
        <input name="outside" value="o">"""
    assert pairs(submit(html)) == [("user", "u"), ("go", "Go")]


def test_nested_form_tags_are_one_form() -> None:
    html = '<form><input name="a" value="1"><form><input name="b" value="2"></form></form>'
    assert pairs(submit(html)) == [("a", "1"), ("b", "2")]


def test_template_contents_are_not_controls() -> None:
    html = '<form><template><input name="t" value="1"></template><input name="a"></form>'
    assert pairs(submit(html)) == [("a", "")]


# Controls.


def test_input_text() -> None:
    result = submit(
        """<form><input type="text" name="i1" value="i1v1"><input type="text" name="i2">
        <input type="text" value="i3v1"><input type="text"><input name="i4" value="i4v1">
        <input type="TeXt" name="i5" value="five"><input type="unknown" name="i6" value="6">
        </form>"""
    )
    assert pairs(result) == [("i1", "i1v1"), ("i2", ""), ("i4", "i4v1"), ("i5", "five"),
                             ("i6", "6")]  # fmt: skip


def test_input_hidden_keeps_its_value_as_written() -> None:
    result = submit(
        """<form><input type="hidden" name="i1" value="i1v1"><input type="hidden" name="i2">
        <input type="hidden" value="i3v1"><input type="hidden">
        <input type="hidden" name="__VIEWSTATE" value=" /wEPDw==\n">
        <input type="text" name="t" value=" a\nb "></form>"""
    )
    assert result.fields == (("i1", "i1v1"), ("i2", ""), ("__VIEWSTATE", " /wEPDw==\r\n"),
                             ("t", " ab "))  # fmt: skip


def test_textarea() -> None:
    result = submit(
        """<form><textarea name="i1">i1v</textarea><textarea name="i2"></textarea>
        <textarea name="i3"/></textarea><textarea>i4v</textarea>
        <textarea name="i5">\nfirst newline dropped\nx &amp; <b>y</b></textarea></form>"""
    )
    assert result.fields == (("i1", "i1v"), ("i2", ""), ("i3", ""),
                             ("i5", "first newline dropped\r\nx & <b>y</b>"))  # fmt: skip


def test_select() -> None:
    result = submit(
        """<form>
        <select name="i1"><option value="i1v1">option 1</option>
          <option value="i1v2" selected>option 2</option></select>
        <select name="i2"><option value="i2v1">option 1</option>
          <option value="i2v2">option 2</option></select>
        <select><option value="i3v1">option 1</option></select>
        <select name="i4" multiple><option value="i4v1">option 1</option>
          <option value="i4v2" selected>option 2</option>
          <option value="i4v3" selected>option 3</option></select>
        <select name="i5" multiple><option value="i5v1">option 1</option></select>
        <select name="i6"></select>
        <select name="i7"/>
        </form>"""
    )
    assert pairs(result) == [("i1", "i1v2"), ("i2", "i2v1"), ("i4", "i4v2"), ("i4", "i4v3")]


def test_select_edge_cases_follow_the_selectedness_algorithm() -> None:
    result = submit(
        """<form>
        <select name="last"><option selected>a<option selected>b</select>
        <select name="text"><option>  spaced\n  text </option></select>
        <select name="skip_disabled"><option disabled>x<option>y</select>
        <select name="group"><optgroup disabled><option>x</optgroup><option>z</select>
        <select name="disabled_selected"><option selected disabled>x<option>y</select>
        <select name="listbox" size="3"><option>x</select>
        <select name="dropdown" size="1"><option>w</select>
        <select name="all_disabled"><option disabled>x</select>
        </form>"""
    )
    # Scrapy takes the first option even if disabled, and keeps several selected options
    # of a single select; the browser keeps the last selected and skips disabled ones.
    assert pairs(result) == [("last", "b"), ("text", "spaced text"), ("skip_disabled", "y"),
                             ("group", "z"), ("dropdown", "w")]  # fmt: skip


def test_radio() -> None:
    result = submit(
        """<form><input type="radio" name="i1" value="i1v1">
        <input type="radio" name="i1" value="iv2" checked>
        <input type="radio" name="i2" checked><input type="radio" name="i2">
        <input type="radio" name="i3" value="i3v1"><input type="radio" name="i3">
        <input type="radio" value="i4v1"><input type="radio"></form>"""
    )
    assert pairs(result) == [("i1", "iv2"), ("i2", "on")]


def test_radio_group_keeps_the_last_checked() -> None:
    # Checking a radio unchecks the rest of its group; Scrapy sends both.
    html = (
        "<form><input type=radio name=r value=a checked><input type=radio name=r value=b checked>"
    )
    assert pairs(submit(html)) == [("r", "b")]


def test_checkbox() -> None:
    result = submit(
        """<form><input type="checkbox" name="i1" value="i1v1">
        <input type="checkbox" name="i1" value="iv2" checked>
        <input type="checkbox" name="i2" checked><input type="checkbox" name="i2">
        <input type="checkbox" name="i3" value="i3v1"><input type="checkbox" name="i3">
        <input type="checkbox" value="i4v1"><input type="checkbox">
        <input type="CHECKBOX" name="i5" value="" checked></form>"""
    )
    assert pairs(result) == [("i1", "iv2"), ("i2", "on"), ("i5", "")]


def test_disabled_controls_and_fieldsets() -> None:
    # Scrapy sends disabled controls; browsers skip them.
    result = submit(
        """<form>
        <input name="off" value="1" disabled>
        <fieldset disabled>
          <legend><input name="in_legend" value="2"></legend>
          <input name="in_fieldset" value="3">
          <legend><input name="second_legend" value="4"></legend>
        </fieldset>
        <fieldset><legend>x</legend><input name="enabled" value="5"></fieldset>
        <fieldset disabled><div><legend><input name="legend_not_child" value="6"></legend></div>
        </fieldset>
        <textarea name="ta" disabled>7</textarea>
        <select name="sel" disabled><option>8</select>
        </form>"""
    )
    assert pairs(result) == [("in_legend", "2"), ("enabled", "5")]


def test_datalist_options_and_controls_are_skipped() -> None:
    html = '<form><datalist><input name="d" value="1"></datalist><input name="a" list="x"></form>'
    assert pairs(submit(html)) == [("a", "")]


def test_reset_and_button_inputs_never_submit() -> None:
    result = submit(
        """<form><input type="hidden" name="i1" value="i1v"><input type="text" name="i2"
        value="i2v"><input type="reset" name="resetme"><input type="button" name="b">
        <button type="reset" name="r">r</button><button type="button" name="bb">bb</button>
        <input type="submit" name="i3" value="i3v"></form>"""
    )
    assert pairs(result) == [("i1", "i1v"), ("i2", "i2v"), ("i3", "i3v")]
    assert pairs(submit(
        '<form><input type="reset" name="r"><button type=button name="b">b</button>'
    )) == []  # fmt: skip


def test_file_input_without_a_file_is_an_empty_file() -> None:
    html = '<form method="post" enctype="multipart/form-data"><input type="file" name="f">'
    result = submit(html, boundary="XyZ")
    assert result.fields == (("f", FormFile("", "application/octet-stream", b"")),)
    assert result.body == (
        b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename=""\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n\r\n--XyZ--\r\n"
    )
    # Urlencoded, a file is its name: empty.
    assert pairs(submit('<form><input type="file" name="f" value="ignored"></form>')) == [("f", "")]


def test_charset_hidden_field_gets_the_encoding() -> None:
    html = '<form><input type="hidden" name="_charset_" value="x"><input name="_CHARSET_">'
    assert pairs(submit(html)) == [("_charset_", "UTF-8"), ("_CHARSET_", "")]
    assert pairs(submit(html, encoding="latin-1")) == [("_charset_", "windows-1252"),
                                                       ("_CHARSET_", "")]  # fmt: skip


def test_dirname_sends_the_direction() -> None:
    result = submit(
        """<form dir="rtl"><input name="q" dirname="q.dir" value="x">
        <input name="a" dir="auto" dirname="a.dir" value="\u05e9\u05dc\u05d5\u05dd">
        <textarea name="t" dir="ltr" dirname="t.dir">t</textarea>
        <input name="n" dirname="" value="no"></form>"""
    )
    shalom = "\u05e9\u05dc\u05d5\u05dd"
    assert pairs(result) == [("q", "x"), ("q.dir", "rtl"), ("a", shalom), ("a.dir", "rtl"),
                             ("t", "t"), ("t.dir", "ltr"), ("n", "no")]  # fmt: skip


def test_input_values_are_sanitised_by_type() -> None:
    result = submit(
        """<form>
        <input type="url" name="url" value=" http://x/ \n">
        <input type="email" name="email" value=" a@b.c ">
        <input type="email" name="emails" multiple value=" a@b.c , d@e.f">
        <input type="number" name="n1" value="1.5e3"><input type="number" name="n2" value="x1">
        <input type="range" name="r1"><input type="range" name="r2" min="0" max="10" value="20">
        <input type="range" name="r3" value="3.4">
        <input type="range" name="r4" step="5" value="7.5">
        <input type="color" name="c1" value="#ABCDEF"><input type="color" name="c2" value="red">
        <input type="date" name="d1" value="2024-02-29">
        <input type="date" name="d2" value="2023-02-29">
        <input type="month" name="m1" value="2024-12"><input type="month" name="m2" value="2024-13">
        <input type="week" name="w1" value="2020-W53"><input type="week" name="w2" value="2021-W53">
        <input type="time" name="t1" value="23:59:59.5"><input type="time" name="t2" value="24:00">
        <input type="datetime-local" name="dt1" value="2024-01-02 03:04:00">
        <input type="datetime-local" name="dt2" value="2024-01-02T03:04:05.120">
        <input type="datetime-local" name="dt3" value="2024-01-02">
        <input type="password" name="p" value="se\ncret">
        </form>"""
    )
    assert dict(result.fields) == {
        "url": "http://x/", "email": "a@b.c", "emails": "a@b.c,d@e.f", "n1": "1.5e3",
        "n2": "", "r1": "50", "r2": "10", "r3": "3", "r4": "10", "c1": "#abcdef",
        "c2": "#000000", "d1": "2024-02-29", "d2": "", "m1": "2024-12", "m2": "",
        "w1": "2020-W53", "w2": "", "t1": "23:59:59.5", "t2": "", "dt1": "2024-01-02T03:04",
        "dt2": "2024-01-02T03:04:05.12", "dt3": "", "p": "secret",
    }  # fmt: skip


# The submitter.

CLICKABLES = """<form action="get.php" method="GET">
  <input type="submit" name="clickable1" value="clicked1">
  <input type="hidden" name="one" value="1"><input type="hidden" name="two" value="3">
  <input type="submit" name="clickable2" value="clicked2">
</form>"""


def test_first_submit_button_is_clicked_by_default() -> None:
    result = submit(CLICKABLES, values={"two": "2"})
    assert pairs(result) == [("clickable1", "clicked1"), ("one", "1"), ("two", "2")]


def test_button_chosen_by_name_value_or_selector() -> None:
    result = submit(CLICKABLES, values={"two": "2"}, clicked_name="clickable2")
    assert pairs(result) == [("one", "1"), ("two", "2"), ("clickable2", "clicked2")]
    assert ("clickable2", "clicked2") in pairs(submit(CLICKABLES, clicked_value="clicked2"))
    selected = submit(CLICKABLES, clicked="input:nth-of-type(4)")
    assert ("clickable2", "clicked2") in pairs(selected)
    assert ("clickable2", "clicked2") in pairs(submit(CLICKABLES, clicked="[name$='2']"))


def test_same_name_buttons_chosen_by_value() -> None:
    html = """<form action="get.php"><input type="submit" name="clickable" value="clicked1">
      <input type="submit" name="clickable" value="clicked2">
      <input type="hidden" name="one" value="clicked1"></form>"""
    result = submit(html, clicked_name="clickable", clicked_value="clicked2")
    assert pairs(result) == [("clickable", "clicked2"), ("one", "clicked1")]


def test_ambiguous_or_missing_button_is_an_error() -> None:
    with pytest.raises(FormError, match="2 submit buttons match selector"):
        submit(CLICKABLES, clicked="input[type=submit]")
    with pytest.raises(FormError, match="no submit button of the form matches name 'nope'"):
        submit(CLICKABLES, clicked_name="nope")
    with pytest.raises(FormError, match="no submit button"):
        submit('<form><input type="reset" name="r"></form>', clicked_name="r")
    with pytest.raises(FormError, match="is disabled"):
        submit('<form><button name="b" disabled>b</button></form>', clicked_name="b")
    with pytest.raises(FormError, match="click=False"):
        submit(CLICKABLES, click=False, clicked_name="clickable1")


def test_buttons_of_another_form_are_not_clicked() -> None:
    html = """<form name="form1"><input type="submit" name="clickable" value="clicked1">
      <input type="hidden" name="field1" value="value1"></form>
      <form name="form2"><input type="submit" name="clickable" value="clicked2">
      <input type="hidden" name="field2" value="value2"></form>"""
    result = submit(html, selector="form[name=form2]", clicked_name="clickable")
    assert pairs(result) == [("clickable", "clicked2"), ("field2", "value2")]


def test_no_click() -> None:
    result = submit(CLICKABLES, click=False)
    assert pairs(result) == [("one", "1"), ("two", "3")]


def test_type_is_case_insensitive() -> None:
    html = """<form action="get.php"><input type="SuBmIt" name="clickable1" value="clicked1">
      <input type="iMaGe" name="i1" src="http://my.image.org/1.jpg">
      <input type="submit" name="clickable2" value="clicked2"></form>"""
    assert pairs(submit(html)) == [("clickable1", "clicked1")]


def test_image_button_sends_coordinates() -> None:
    # Scrapy sends i2=i2v for an image button; a browser sends the click point.
    html = """<form><input type="text" name="i1" value="i1v">
      <input id="image" name="i2" type="image" value="i2v" alt="Login" src="1.jpg"></form>"""
    assert pairs(submit(html)) == [("i1", "i1v"), ("i2.x", "0"), ("i2.y", "0")]
    assert pairs(submit(html, coordinates=(12, 7)))[1:] == [("i2.x", "12"), ("i2.y", "7")]
    nameless = submit('<form><input type="image" src="1.jpg"></form>')
    assert pairs(nameless) == [("x", "0"), ("y", "0")]
    assert pairs(submit(html, click=False)) == [("i1", "i1v")]


def test_buttons_with_and_without_values() -> None:
    tail = '<input type="hidden" name="test1" value="val1">'
    for button, expected in (
        ('<button type="submit" name="button1" value="submit1">Submit</button>', "submit1"),
        ('<button name="button1" value="submit1">Submit</button>', "submit1"),
        ('<button type="bogus" name="button1" value="submit1">Submit</button>', "submit1"),
        ('<input type="submit" name="button1">Submit</button>', ""),
        ('<button type="submit" name="button1">Submit</button>', ""),
    ):
        result = submit(f'<form action="post.php" method="POST">{tail}{button}</form>')
        assert result.method == "POST"
        assert result.url == "http://example.com/this/post.php"
        assert pairs(result) == [("test1", "val1"), ("button1", expected)]


def test_disabled_default_button_sends_nothing_of_its_own() -> None:
    html = "<form><input type=submit name=a value=1 disabled><input type=submit name=b value=2>"
    assert pairs(submit(html)) == []
    assert pairs(submit(html, clicked_name="b")) == [("b", "2")]


def test_submitter_overrides_action_method_and_enctype() -> None:
    # Scrapy ignores formaction/formmethod/formenctype.
    html = """<form action="/form" method="get">
      <input name="q" value="1">
      <button name="save" formaction="/save" formmethod="POST" formenctype="text/plain">S</button>
      <button name="bogus" formmethod="nonsense">B</button>
      <button name="here" formaction="">H</button></form>"""
    result = submit(html, url="http://example.com/page?x=1", clicked_name="save")
    assert (result.method, result.url, result.enctype) == (
        "POST", "http://example.com/save", "text/plain")  # fmt: skip
    assert result.body == b"q=1\r\nsave=\r\n"
    assert result.headers == {"Content-Type": "text/plain"}
    # An invalid formmethod is GET, whatever the form says.
    post_form = html.replace('method="get"', 'method="post"')
    assert submit(post_form, clicked_name="bogus").method == "GET"
    # An empty formaction is the document's URL, not the form's action.
    assert submit(html, url="http://example.com/page?x=1", clicked_name="here").url == (
        "http://example.com/page?q=1&here="
    )
    # Without the submitter, the form's own.
    assert submit(html, click=False).url == "http://example.com/form?q=1"


# Values.


def test_values_replace_fields_in_place_and_none_removes() -> None:
    html = """<form action="get.php" method="POST"><input type="hidden" name="one" value="1">
      <input type="hidden" name="two" value="3"><input name="three" value="x"></form>"""
    assert pairs(submit(html, values={"one": "9"})) == [("one", "9"), ("two", "3"),
                                                        ("three", "x")]  # fmt: skip
    assert pairs(submit(html, values={"two": None})) == [("one", "1"), ("three", "x")]
    repeated = submit(html, values=[("two", "2"), ("two", "4")])
    assert pairs(repeated) == [("one", "1"), ("two", "2"), ("two", "4"), ("three", "x")]


def test_values_on_an_empty_form() -> None:
    result = submit("<form></form>", values=(("foo", "bar"), ("foo", "baz")))
    assert result.url == "http://example.com/this/list.html?foo=bar&foo=baz"


def test_value_for_unchecked_checkbox_goes_where_the_checkbox_is() -> None:
    html = """<form><input name="a" value="1"><input type="checkbox" name="remember">
      <input name="b" value="2"></form>"""
    result = submit(html, values={"remember": "on"})
    assert pairs(result) == [("a", "1"), ("remember", "on"), ("b", "2")]


def test_multi_select_and_checkbox_values_as_lists() -> None:
    html = """<form><select name="s" multiple><option>a<option>b<option>c</select>
      <input type="checkbox" name="c" value="x" checked><input type="checkbox" name="c" value="y">
      </form>"""
    result = submit(html, values={"s": ["a", "c"], "c": ["x", "y"]})
    assert pairs(result) == [("s", "a"), ("s", "c"), ("c", "x"), ("c", "y")]


def test_value_overrides_the_clicked_button() -> None:
    html = '<form><input type="submit" name="clickme" value="one"> </form>'
    assert pairs(submit(html, values={"clickme": "two"}, clicked_name="clickme")) == [
        ("clickme", "two")
    ]


def test_strict_values() -> None:
    html = """<form><input name="a"><input type="checkbox" name="c"><input name="d" disabled>
      <input type="image" name="img"><textarea name="t" dirname="t.dir"></textarea></form>"""
    for name in ("a", "c", "d", "img.x", "t.dir"):
        submit(html, values={name: "1"}, strict=True)
    with pytest.raises(FormError, match="no field named 'zzz', 'yyy'"):
        submit(html, values={"zzz": "1", "a": "2", "yyy": None}, strict=True)
    assert ("zzz", "1") in pairs(submit(html, values={"zzz": "1"}))


def test_bad_values_are_type_errors() -> None:
    html = "<form><input name=a></form>"
    with pytest.raises(TypeError, match="'a'"):
        submit(html, values={"a": 1})
    with pytest.raises(TypeError, match="mapping or"):
        submit(html, values=[("a",)])


# Encodings and serialisations.


def test_urlencoded_escapes_all_but_alphanumerics_and_star_dash_dot_underscore() -> None:
    result = submit(
        '<form method="post"><input name="k" value="a b~!*\'()-._+&=%/?">', url="http://x/"
    )
    assert result.body == b"k=a+b%7E%21*%27%28%29-._%2B%26%3D%25%2F%3F"


def test_non_ascii_in_utf8_and_legacy_pages() -> None:
    html = """<form action="post.php" method="POST">
      <input type="hidden" name="test \u00a3" value="val1">
      <input type="hidden" name="test2" value="xxx \u00b5"></form>"""
    utf8 = submit(html, values={"six": "seven"})
    assert utf8.body == b"test+%C2%A3=val1&test2=xxx+%C2%B5&six=seven"
    latin = submit(html, encoding="latin1")
    assert latin.body == b"test+%A3=val1&test2=xxx+%B5"
    assert pairs(latin, "latin1") == [("test \u00a3", "val1"), ("test2", "xxx \u00b5")]


def test_unencodable_characters_become_numeric_references() -> None:
    html = '<form method="post"><input name="q" value="\u20ac \u4e2d">'
    # cp1252 has the euro sign (0x80) but not U+4E2D.
    assert submit(html, encoding="windows-1252").body == b"q=%80+%26%2320013%3B"
    assert submit(html, encoding="iso-8859-1").body == b"q=%80+%26%2320013%3B"  # = cp1252


def test_unicode_button_names_in_latin1() -> None:
    html = """<form action="get.php"><input type="submit" name="price in \u00a3" value="\u00a3 1">
      <input type="submit" name="price in \u00a5" value="\u00a5 2"></form>"""
    result = submit(html, encoding="latin1", clicked_name="price in \u00a5")
    assert result.url.endswith("?price+in+%A5=%A5+2")


def test_accept_charset_chooses_the_encoding() -> None:
    html = '<form method="post" accept-charset="{}"><input name="q" value="\u00e9">'
    assert submit(html.format("bogus ISO-8859-15 utf-8")).body == b"q=%E9"
    assert submit(html.format("bogus"), encoding="cp1252").body == b"q=%C3%A9"  # none known
    assert submit(html.format("utf-16"), encoding="cp1252").body == b"q=%C3%A9"
    assert submit('<form method="post"><input name="q" value="\u00e9">',
                  encoding="utf-16").body == b"q=%C3%A9"  # fmt: skip


def test_action_query_encoded_in_the_page_encoding() -> None:
    result = submit('<form method="post" action="s?q=\u00e9"></form>', encoding="cp1252")
    assert result.url == "http://example.com/this/s?q=%E9"


def test_multipart_body() -> None:
    html = """<form method="post" enctype="MULTIPART/form-data" action="/up">
      <input name="a" value="1"><textarea name='n"l&#10;'>x\ny</textarea>
      <input type="file" name="doc"></form>"""
    upload = FormFile('r\u00e9"sum\u00e9.txt', "text/plain", b"hello\r\n")
    result = submit(html, values={"doc": upload}, boundary="b0undary")
    assert result.headers == {"Content-Type": "multipart/form-data; boundary=b0undary"}
    assert result.enctype == "multipart/form-data"
    assert result.body == (
        b'--b0undary\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n'
        b'--b0undary\r\nContent-Disposition: form-data; name="n%22l%0D%0A"\r\n\r\nx\r\ny\r\n'
        b'--b0undary\r\nContent-Disposition: form-data; name="doc"; '
        b'filename="r\xc3\xa9%22sum\xc3\xa9.txt"\r\nContent-Type: text/plain\r\n\r\n'
        b"hello\r\n\r\n--b0undary--\r\n"
    )


def test_multipart_without_entries_is_the_closing_boundary() -> None:
    result = submit('<form method="post" enctype="multipart/form-data">', boundary="b")
    assert result.body == b"--b--\r\n"


def test_multipart_boundary_is_random_and_absent_from_the_data() -> None:
    html = '<form method="post" enctype="multipart/form-data"><input name="a" value="x">'
    first, second = submit(html), submit(html)
    assert first.headers != second.headers
    boundary = first.headers["Content-Type"].partition("boundary=")[2]
    assert first.body is not None and first.body.endswith(f"--{boundary}--\r\n".encode())
    with pytest.raises(FormError, match="boundary"):
        submit(html, values={"a": "--zz--"}, boundary="zz")
    with pytest.raises(FormError, match="boundary"):
        submit(html, boundary="has space")
    with pytest.raises(FormError, match="newline"):
        submit(html, values={"a": FormFile("f", "text/plain\r\nX-Evil: 1")})


def test_file_in_a_urlencoded_form_is_its_name() -> None:
    result = submit('<form method="post"><input type="file" name="f">',
                    values={"f": FormFile("a b.txt", data=b"ignored")})  # fmt: skip
    assert result.body == b"f=a+b.txt"


def test_text_plain_body() -> None:
    html = """<form method="post" enctype="text/plain"><input name="a" value="1 2">
      <textarea name="t">x\ny</textarea></form>"""
    result = submit(html, encoding="cp1252", values={"u": "\u00e9\u4e2d"})
    assert result.body == b"a=1 2\r\nt=x\r\ny\r\nu=\xe9&#20013;\r\n"


def test_get_ignores_the_enctype() -> None:
    html = '<form enctype="multipart/form-data"><input name="a" value="1"></form>'
    result = submit(html)
    assert result.url == "http://example.com/this/list.html?a=1"
    assert (result.enctype, result.body) == ("application/x-www-form-urlencoded", None)


def test_lone_surrogates_become_replacement_characters() -> None:
    result = submit('<form method="post"><input name="a"></form>', values={"a": "x\ud800"})
    assert result.fields == (("a", "x\ufffd"),)
    assert result.body == b"a=x%EF%BF%BD"
    paired = submit('<form method="post"></form>', values={"e": "\ud83d\ude00\udc00"})
    assert paired.fields == (("e", "\U0001f600\ufffd"),)


def test_newlines_in_names_and_values_become_crlf() -> None:
    result = submit('<form method="post"></form>', values={"a\rb": "1\n2\r\n3"})
    assert result.fields == (("a\r\nb", "1\r\n2\r\n3"),)
    assert result.body == b"a%0D%0Ab=1%0D%0A2%0D%0A3"
