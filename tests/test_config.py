from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from trio_scrape import ConfigError, CrawlConfig


def test_defaults() -> None:
    config = CrawlConfig()
    assert config.workers == 16 and config.channel_buffer == 16
    assert config.timeout == 10 and config.grace == 5 and config.retries == 2
    assert config.max_bytes == 10 * 1024 * 1024 and config.depth == 0
    assert config.user_agent.startswith("trio-scrape/")
    assert CrawlConfig(workers=4).channel_buffer == 4
    assert CrawlConfig(workers=4, buffer=0).channel_buffer == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("workers", 0),
        ("workers", 1.5),
        ("workers", True),
        ("depth", -1),
        ("retries", -1),
        ("timeout", 0),
        ("timeout", -1),
        ("timeout", float("nan")),
        ("timeout", float("inf")),
        ("deadline", 0),
        ("grace", -1),
        ("max_bytes", 0),
        ("max_pages", 0),
        ("buffer", -1),
        ("scope", "planet"),
        ("include", ("(",)),
        ("exclude", "notatuple"),
        ("headers", {"Bad\nName": "x"}),
        ("headers", {"X": "a\r\nInjected: 1"}),
        ("user_agent", ""),
        ("proxy", "not a url"),
        ("extract", 42),
    ],
)
def test_bad_values_name_their_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        CrawlConfig(**{field: value})
    assert info.value.field == field
    assert field in str(info.value)


def test_frozen_and_keyword_only() -> None:
    config = CrawlConfig(include=["a"])  # type: ignore[arg-type]
    assert config.include == ("a",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.workers = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.headers["X"] = "y"  # type: ignore[index]
    with pytest.raises(TypeError):
        CrawlConfig(1)  # type: ignore[call-arg]
    assert dataclasses.replace(config, workers=3).workers == 3
