from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

from trio_scrape import OutputError, Page, PageError, open_file_sink
from trio_scrape.model.page import RECORD_FIELDS


def sample_pages() -> list[Page]:
    good = Page(
        url="http://a/",
        final_url="http://a/",
        status=200,
        content_type="text/html",
        bytes=10,
        elapsed=0.5,
        fetched_at="2026-01-01T00:00:00.000Z",
        title="=1+2 \u2603",
        data={"price": "3", "when": {1, 2}},
        links=["http://a/b"],
    )
    bad = Page(
        url="http://a/b",
        depth=1,
        referrer="http://a/",
        error=PageError("timeout", 'slow, "very"\nslow'),
    )
    surrogate = Page(url="http://a/c", title="bad \udcff surrogate")
    return [good, bad, surrogate]


async def test_jsonl_sink(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = open_file_sink(str(path), "jsonl", links=True)
    for page in sample_pages():
        await sink.send(page)
    await sink.aclose()
    lines = path.read_bytes().decode("utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [list(r) for r in records] == [list(RECORD_FIELDS)] * 3
    assert records[0]["ok"] is True and records[0]["links"] == ["http://a/b"]
    assert records[0]["data"] == {"price": "3", "when": [1, 2]}
    assert records[1]["ok"] is False and records[1]["error"]["kind"] == "timeout"
    assert records[2]["title"] == "bad \ufffd surrogate"  # as docs/records.md says


async def test_jsonl_items_are_written_as_encoded_when_emitted(tmp_path: Path) -> None:
    from trio_scrape.output.items import open_item_sink
    from trio_scrape.scraper.items import Items, encode_item

    path = tmp_path / "items.jsonl"
    sink = open_item_sink(str(path), "jsonl")
    emitted = Items()
    for value in ({"a": 1}, {"b": ["x", None]}):
        item, line = encode_item(value)
        emitted.append(item)
        emitted.lines.append(line)
    emitted[0]["a"] = 2  # changed after it was emitted: written as emitted
    plain = Page(url="http://a/2")
    plain.items = [{"c": (1, 2)}]  # a page's items without their lines: encoded here
    for page, items in ((Page(url="http://a/1"), emitted), (plain, plain.items)):
        page.items = items
        await sink.send(page)
    await sink.aclose()
    lines = path.read_text("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [{"a": 1}, {"b": ["x", None]}, {"c": [1, 2]}]


async def test_csv_items_write_their_values_as_the_jsonl_items_do(tmp_path: Path) -> None:
    """true/false, numbers as numbers, null (an empty cell) for None and for the floats JSON
    has no number for, lists and objects as JSON text."""
    from trio_scrape.output.items import open_item_sink

    values: dict[str, Any] = {"t": True, "f": False, "n": None, "i": 3, "x": 2.5, "nan": math.nan}
    values |= {"inf": math.inf, "ninf": -math.inf, "l": [1, "a"], "d": {"k": None}}
    for fmt in ("csv", "jsonl"):
        path = tmp_path / f"items.{fmt}"
        sink = open_item_sink(str(path), fmt)
        page = Page(url="http://a/1")
        page.items = [dict(values)]
        await sink.send(page)
        await sink.aclose()
    [header, row] = list(csv.reader(io.StringIO((tmp_path / "items.csv").read_text("utf-8"))))
    cells = dict(zip(header, row, strict=True))
    assert cells.pop("_extra") == ""
    [item] = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    # Each cell is the JSON value's text (a string's own text), an empty cell for null.
    as_json = {
        k: "" if v is None else json.dumps(v, separators=(",", ":")) for k, v in item.items()
    }
    assert cells == as_json
    assert cells["t"] == "true" and cells["nan"] == "" and cells["x"] == "2.5"


async def test_jsonl_without_links_omits_the_field(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = open_file_sink(str(path), "jsonl")
    await sink.send(sample_pages()[0])
    await sink.aclose()
    assert "links" not in json.loads(path.read_text())


async def test_csv_sink(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    sink = open_file_sink(str(path), "csv")
    for page in sample_pages():
        await sink.send(page)
    await sink.aclose()
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == [f for f in RECORD_FIELDS if f != "links"]
    assert rows[0]["ok"] == "true" and rows[0]["status"] == "200"
    assert json.loads(rows[0]["data"]) == {"price": "3", "when": [1, 2]}
    assert rows[1]["status"] == "" and json.loads(rows[1]["error"])["message"].endswith("slow")


def test_unwritable_output_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot open output"):
        open_file_sink(str(tmp_path / "missing" / "out.jsonl"), "jsonl")


async def test_write_failure_is_an_output_error() -> None:
    sink = open_file_sink("/dev/full", "jsonl")
    await sink.send(sample_pages()[0])
    with pytest.raises(OutputError, match="cannot write records"):
        await sink.aclose()


@pytest.mark.parametrize("safe", [True, False])
async def test_csv_formula_cells_are_quoted(tmp_path: Path, safe: bool) -> None:
    path = tmp_path / "out.csv"
    sink = open_file_sink(str(path), "csv", csv_safe=safe)
    titles = ['=HYPERLINK("http://evil","x")', "+1", "-2+3", "@SUM(A1)", "\tx", "ok = fine"]
    for title in titles:
        await sink.send(Page(url="http://a/", title=title, data={"n": -1}))
    await sink.aclose()
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    got = [row["title"] for row in rows]
    if safe:
        assert got == ["'" + t for t in titles[:-1]] + ["ok = fine"]
    else:
        assert got == titles
    assert rows[0]["url"] == "http://a/" and json.loads(rows[0]["data"]) == {"n": -1}


async def test_jsonl_output_is_valid_utf8_whatever_a_hook_returns(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = open_file_sink(str(path), "jsonl")
    data: dict[Any, Any] = {"k": "\udcff", 1: b"x"}  # what a careless hook might return
    await sink.send(Page(url="http://a/", title="\ud800 lone", data=data))
    await sink.aclose()
    text = path.read_bytes().decode("utf-8")  # strict: raises on invalid UTF-8
    record = json.loads(text)
    assert record["title"].endswith(" lone")
