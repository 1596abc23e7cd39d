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


def test_no_subpackage_shadows_a_public_name() -> None:
    """Importing a subpackage sets it as an attribute of the package: one named like a public
    name (``trio_scrape.scrape``) would replace the function with the module."""
    import importlib
    import pkgutil
    import types

    for module in pkgutil.walk_packages(trio_scrape.__path__, "trio_scrape."):
        if not module.name.endswith("__main__"):  # that one runs the CLI
            importlib.import_module(module.name)
    for name in trio_scrape.__all__:
        assert not isinstance(getattr(trio_scrape, name), types.ModuleType), name


def test_frontier_error_is_exported_and_is_a_trio_scrape_error() -> None:
    # It can escape Crawler.run (Redis fails mid-crawl): callers must be able to catch it.
    from trio_scrape.errors import FrontierError

    assert "FrontierError" in trio_scrape.__all__
    assert trio_scrape.FrontierError is FrontierError
    assert issubclass(trio_scrape.FrontierError, trio_scrape.TrioScrapeError)
