import trio_scrape


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in dir(trio_scrape) if not name.startswith("_")}
    assert sorted(trio_scrape.__all__) == trio_scrape.__all__
    assert public == set(trio_scrape.__all__) - {"__version__"}


def test_exports_claim_the_public_module() -> None:
    assert trio_scrape.Crawler.__module__ == "trio_scrape"
    assert trio_scrape.CrawlConfig.__module__ == "trio_scrape"


def test_version() -> None:
    assert trio_scrape.__version__.count(".") == 2


def test_frontier_error_is_exported_and_is_a_trio_scrape_error() -> None:
    # It can escape Crawler.run (Redis fails mid-crawl): callers must be able to catch it.
    from trio_scrape.errors import FrontierError

    assert "FrontierError" in trio_scrape.__all__
    assert trio_scrape.FrontierError is FrontierError
    assert issubclass(trio_scrape.FrontierError, trio_scrape.TrioScrapeError)
