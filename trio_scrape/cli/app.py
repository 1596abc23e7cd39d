"""``trio-scrape``: parse options into a :class:`CrawlConfig`, then call the library.

No crawl logic lives here. Exit codes: 0 the crawl finished (failed pages are records),
1 a fatal runtime error (output not writable), 2 a usage error (one line on stderr, no
traceback), 3 the shared frontier (Redis) failed, 4 a scraper's log-in failed (its start-up
step, or a handler raising ``LoginFailed``), 130 after SIGINT and 143 after SIGTERM (once
in-flight pages had their grace and every record so far is written).
"""

# No `from __future__ import annotations` here: typer reads the commands' annotations at every
# start, and as strings it would compile and evaluate each of them (~8 ms of a start).
import codecs
import contextlib
import dataclasses
import enum
import functools
import inspect
import itertools
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, NoReturn

import trio
import typer

from .._version import __version__
from ..engine.crawler import Crawler, raise_single
from ..engine.stats import CrawlStatistics
from ..errors import (
    ConfigError,
    FrontierError,
    LoginFailed,
    OutputError,
    StateError,
    WorkerError,
)
from ..model.config import LIMITS, CrawlConfig
from ..model.urls import canonicalize
from ..model.validate import number, shorten
from ..output.sinks import OutputFormat, open_file_sink
from . import options
from .coercion import FastCommand, FastGroup
from .options import Format, UsageError

__all__ = ["Format", "UsageError", "app", "main"]

PROG = "trio-scrape"
logger = logging.getLogger("trio_scrape")


app = typer.Typer(
    name=PROG,
    cls=FastGroup,  # option values converted without pydantic where plain (_cli_coercion)
    rich_markup_mode="rich",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="A fast, correct web crawler built on Trio. Writes one record per page.",
)


def _version(value: bool) -> None:
    if value:
        print(f"{PROG} {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """A fast, correct web crawler built on Trio. Writes one record per page."""


_RUN_EXAMPLES = (
    "[bold]Examples[/]\n\n"
    "trio-scrape run https://example.org/ --depth 2 -o pages.jsonl\n\n"
    "trio-scrape run https://example.org/ --depth 3 --select 'title=h1' "
    "--select-all 'tags=a.tag' --cache .cache\n\n"
    "trio-scrape run --sitemap https://example.org/sitemap.xml --format csv -o pages.csv\n\n"
    "trio-scrape run https://example.org/ --depth 5 -o pages.jsonl --state crawl.db  "
    "(run it again to resume)\n\n"
    "trio-scrape run --config crawl.toml --max-pages 100"
)


def run(**given: Any) -> None:
    """Crawl from the seed URLs and write one record per page."""
    # Its parameters are options.signature(): CrawlConfig's fields and a few more.
    quiet: bool = given["quiet"]
    _setup_logging(quiet=quiet, verbose=given["verbose"])
    seeds = _seeds(given)
    _merge_named(given)
    config = options.crawl_config(given)
    output: str = given["output"]
    if "\0" in output:
        raise UsageError(f"--output: not a file name: {shorten(output)}")
    _warn_about_open_files(config.workers)
    _warn_if_useless(given)
    out_format: OutputFormat = (
        given["format"].value
        if given["format"]
        else ("csv" if output.lower().endswith(".csv") else "jsonl")
    )
    sink = open_file_sink(
        output,
        out_format,
        links=config.links,
        csv_safe=given["csv_safe"],
        data_fields=[selector.name for selector in config.selectors],
    )
    # A live display only where someone watches it: never when piped, never with --quiet.
    show = sys.stderr.isatty() and not quiet and given["progress"] is not False
    code, stats = _run_crawl(seeds, config, sink, progress=show)
    _report(stats, config, code, quiet=quiet)
    raise typer.Exit(code)


run.__signature__ = options.signature()  # type: ignore[attr-defined]
app.command(cls=FastCommand, epilog=_RUN_EXAMPLES)(run)


_CRAWL_EXAMPLES = (
    "[bold]Examples[/]\n\n"
    "trio-scrape crawl spider.py -o items.jsonl\n\n"
    "trio-scrape crawl spider.py https://example.org/ -o items.csv --records pages.jsonl\n\n"
    "trio-scrape crawl spider.py --max-pages 100 --delay 0.5"
)

#: ``crawl``'s depth when neither the command line nor the spider sets one: a scraper follows
#: what its handlers enqueue, however deep.
SPIDER_DEPTH = 1_000_000
#: ``crawl``'s exit code when a log-in failed (the start-up step, or ``LoginFailed``).
LOGIN_FAILED = 4


def crawl(**given: Any) -> None:
    """Run a scraper defined in a Python file (its router, its start requests, its options):
    write its items, and with --records the page records too."""
    # Its parameters: the spider file, then run's (options.signature()) and --records.
    from .spider import load_spider

    quiet: bool = given["quiet"]
    _setup_logging(quiet=quiet, verbose=given["verbose"])
    spider = load_spider(given["spider"])
    urls = given["urls"] or []
    for url in urls:
        _checked_url(url)
    starts = [*urls, *spider.start]
    if not starts:
        raise UsageError("no start URLs: the spider has no `start`, and none were given")
    _merge_named(given)
    config = dataclasses.replace(options.crawl_config(given), router=spider.router)
    _need_browser(spider, config)
    _warn_if_useless(given)
    sink = _scrape_sink(given, [selector.name for selector in config.selectors])
    show = sys.stderr.isatty() and not quiet and given["progress"] is not False
    code, stats = _run_crawl(starts, config, sink, progress=show)
    _report(stats, config, code, quiet=quiet)
    raise typer.Exit(code)


def _scrape_sink(given: Mapping[str, Any], data_fields: list[str]) -> Any:
    """Items to -o, records to --records (when given)."""
    from ..output.items import ScrapeSink, open_item_sink

    output: str = given["output"]
    records: str | None = given["records"]
    for flag, path in (("--output", output), ("--records", records)):
        if path is not None and "\0" in path:
            raise UsageError(f"{flag}: not a file name: {shorten(path)}")
    if records is not None and _same_file(output, records):
        where = "standard output" if output == "-" else shorten(output)
        raise UsageError(f"--records: the items go to {where} already (-o): give another file")
    items = open_item_sink(output, _format_of(given, output), csv_safe=given["csv_safe"])
    record_sink = None
    if records is not None:
        fmt: OutputFormat = "csv" if records.lower().endswith(".csv") else "jsonl"
        record_sink = open_file_sink(
            records,
            fmt,
            links=given["links"],
            csv_safe=given["csv_safe"],
            data_fields=data_fields,
        )
    return ScrapeSink(items, record_sink)


def _need_browser(spider: Any, config: CrawlConfig) -> None:
    """A TOML spider whose routes scroll or capture runs with the browser, or not at all."""
    from ..scraper.toml_spider import SpiderRouter

    router = spider.router
    if config.render or config.render_auto or not isinstance(router, SpiderRouter):
        return
    routes = router.browser_only()
    if routes:
        raise UsageError(
            f"SPIDER {shorten(str(spider.path), 200)}: routes.{routes[0]}: `scroll` and "
            "`capture` need the browser: give --render (or render = true in [options])"
        )


def _same_file(one: str, other: str) -> bool:
    """Whether two output paths name one file (``-``: standard output)."""
    if one == "-" or other == "-":
        return one == other
    try:
        return os.path.samefile(one, other)
    except OSError:  # one does not exist yet
        return os.path.realpath(one) == os.path.realpath(other)


def _format_of(given: Mapping[str, Any], output: str) -> OutputFormat:
    if given["format"]:
        fmt: OutputFormat = given["format"].value
        return fmt
    return "csv" if output.lower().endswith(".csv") else "jsonl"


def _run_crawl(
    starts: list[Any], config: CrawlConfig, sink: Any, *, progress: bool
) -> tuple[int, CrawlStatistics | None]:
    """Run the crawl; the errors found only once running become usage errors."""
    try:
        return trio.run(functools.partial(_crawl, starts, config, sink, progress=progress))
    except StateError as exc:
        raise UsageError(f"--state: {exc}") from None
    except FrontierError as exc:
        if exc.usage:
            raise UsageError(f"--frontier: {exc}") from None
        raise
    except ConfigError as exc:  # found only once running: e.g. an uncreatable cache directory
        raise UsageError(f"{options.flag_of(exc.field)}: {exc.message}") from None


crawl.__signature__ = options.crawl_signature()  # type: ignore[attr-defined]
app.command(cls=FastCommand, epilog=_CRAWL_EXAMPLES)(crawl)


def _url_argument(help_text: str) -> Any:
    return options._parameter(
        "url",
        str,
        typer.Argument(metavar="URL", help=help_text, show_default=False),
        inspect.Parameter.empty,
    )


def _spider_parameter(help_text: str, default: Any) -> Any:
    return options._parameter(
        "spider",
        Path if default is inspect.Parameter.empty else Path | None,
        typer.Option("--spider", "-s", metavar="SPIDER", help=help_text, show_default=False),
        default,
    )


def _config_parameter() -> Any:
    """``run``'s ``--config FILE``: its fetch options apply (the crawl's others are passed
    over, so one file serves every command)."""
    return options.signature().parameters["config_file"]


def shell(**given: Any) -> None:
    """Fetch one page (as a crawl does: the same options apply) and open a Python session
    with `page`, `ctx` (a handler's Context for it) and `fetch(url)`, to try selectors."""
    from .probe import run_shell
    from .spider import load_spider

    _setup_logging(quiet=False, verbose=given["verbose"])
    url = _checked_url(given["url"])
    _merge_named(given)
    _warn_if_useless(given)
    spider = None if given["spider"] is None else load_spider(given["spider"])
    run_shell(url, options.fetch_config(given), None if spider is None else spider.router)


shell.__signature__ = options.fetch_signature(  # type: ignore[attr-defined]
    [
        _url_argument("The page to fetch."),
        _spider_parameter(
            "A spider file (TOML or Python): its options apply, its log-in step runs first, "
            "and fetch(url, label=...) runs its route for the page.",
            None,
        ),
        _config_parameter(),
    ]
)
app.command(cls=FastCommand)(shell)


def parse(**given: Any) -> None:
    """Run the route a spider gives one page and print, as JSON, the items and the requests
    it yields (and, for a TOML spider, every selector that matched nothing)."""
    from .probe import parse_page

    _setup_logging(quiet=False, verbose=given["verbose"])
    url = _checked_url(given["url"])
    if given["spider"] is None:
        raise UsageError("--spider: missing (the spider file, or a --config file with [routes])")
    _merge_named(given)
    _warn_if_useless(given)
    report = parse_page(url, options.fetch_config(given), given["spider"], given["label"])
    print(json.dumps(report, ensure_ascii=False, indent=2))
    if report["error"] is not None:  # the page failed, its handler raised, or it has none
        raise typer.Exit(1)


parse.__signature__ = options.fetch_signature(  # type: ignore[attr-defined]
    [
        _url_argument("The page to parse."),
        _spider_parameter(
            "The spider file (TOML or Python); its options apply. A --config file with "
            "[routes] is taken as the spider when this is not given.",
            None,
        ),
        _config_parameter(),
        options._parameter(
            "label",
            str | None,
            typer.Option(
                "--label",
                metavar="LABEL",
                help="The label of the page's request (default: none, routed by its URL).",
            ),
            None,
        ),
    ]
)
app.command(cls=FastCommand)(parse)


def _checked_url(url: str, flag: str = "") -> str:
    """``url``, a seed given on the command line, if it is one.

    Raises:
        UsageError: it is not an http(s) URL (saying what may have been meant), or is too
            long.
    """
    try:
        canonicalize(url)
    except ValueError as exc:
        why = f" ({exc})" if "longer than" in str(exc) else _did_you_mean(url)
        raise UsageError(f"{flag}invalid URL {shorten(url, 200)}{why}") from None
    return url


def _seeds(given: Mapping[str, Any]) -> list[str]:
    """The seed URLs (arguments, then --seeds-file), once the options that need them or need
    each other are checked."""
    seeds_file: Path | None = given["seeds_file"]
    seeds = [*(given["urls"] or []), *(_read_seeds(seeds_file) if seeds_file else [])]
    if given["state_reset"] and given["state"] is None:
        raise UsageError("--state-reset: needs --state")
    if given["recrawl"] and given["state"] is None and given["frontier"] is None:
        raise UsageError("--recrawl: needs --state or --frontier (the crawl to look at again)")
    sitemaps = given["sitemap"] or []
    if not seeds and not sitemaps:
        raise UsageError("no seed URLs: give URLs, --seeds-file or --sitemap")
    for flag, urls in (("", seeds), ("--sitemap: ", sitemaps)):
        for url in urls:
            _checked_url(url, flag)
    return seeds


@app.command(cls=FastCommand)
def demo(
    output: Annotated[
        str,
        typer.Option(
            "-o", "--output", metavar="FILE", help="Record file (- = stdout; .csv for CSV)."
        ),
    ] = "-",
    depth: Annotated[
        int, typer.Option(metavar="N", help="Link hops to follow from the home page.")
    ] = 2,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No summary.")] = False,
) -> None:
    """Crawl the bundled demo site, served on a free 127.0.0.1 port for the crawl.

    Needs no network, no second terminal and no free port of yours:
    [bold]trio-scrape demo -o pages.jsonl[/bold] writes one record per page (8 pages).
    """
    from .demo import DEMO_ADDRESS, demo_site_dir, serve_directory

    try:
        root = demo_site_dir()
        config = CrawlConfig(depth=depth)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    except ConfigError as exc:
        raise UsageError(f"{options.flag_of(exc.field)}: {exc.message}") from None
    sink = open_file_sink(output, "csv" if output.lower().endswith(".csv") else "jsonl")
    show = sys.stderr.isatty() and not quiet

    async def serve_and_crawl() -> tuple[int, CrawlStatistics | None]:
        async with trio.open_nursery() as nursery:
            base = await nursery.start(
                functools.partial(
                    serve_directory, root, rewrite=lambda b: {DEMO_ADDRESS.encode(): b.encode()}
                )
            )
            if not quiet:
                print(f"{PROG}: serving the demo site ({root}) at {base}/", file=sys.stderr)
            try:
                return await _crawl([base + "/"], config, sink, progress=show)
            finally:
                nursery.cancel_scope.cancel()

    code, stats = trio.run(serve_and_crawl)
    _report(stats, config, code, quiet=quiet)
    raise typer.Exit(code)


def _report(stats: CrawlStatistics | None, config: CrawlConfig, code: int, *, quiet: bool) -> None:
    """Print the end-of-crawl summary on stderr: a table at a terminal, else one line."""
    # Nothing was queued: a --state crawl that had finished (it said so); no empty summary.
    if stats is None or quiet or stats.seen == 0:
        return
    stopped = _stop_text(stats, config, code)
    if sys.stderr.isatty():
        from .progress import stderr_console, summary_table  # rich: only for a terminal

        stderr_console().print(summary_table(stats, stopped=stopped))
    else:
        print(_summary(stats, stopped), file=sys.stderr)


async def _crawl(
    seeds: list[Any], config: CrawlConfig, sink: Any, *, progress: bool = False
) -> tuple[int, CrawlStatistics | None]:
    """Run the crawl; the first SIGINT/SIGTERM stops it gracefully, a second one at once."""
    crawler = Crawler(seeds, config, sink=sink)
    try:
        return await _crawl_until_signalled(crawler, progress=progress)
    except BaseExceptionGroup as group:
        raise_single(group)


async def _crawl_until_signalled(
    crawler: Crawler, *, progress: bool
) -> tuple[int, CrawlStatistics | None]:
    config = crawler.config
    code = 0
    stats: CrawlStatistics | None = None
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                nonlocal code
                async for signum in signals:
                    if code:
                        logger.warning("second signal: stopping now")
                        nursery.cancel_scope.cancel()
                        return
                    code = 130 if signum == signal.SIGINT else 143
                    logger.warning(
                        "%s: stopping; pages in flight get %gs (again to quit now)",
                        signal.Signals(signum).name,
                        config.grace,
                    )
                    crawler.stop()

            nursery.start_soon(watch_signals)
            if progress:
                from .progress import show_progress, stderr_console

                nursery.start_soon(
                    functools.partial(
                        show_progress, crawler, stderr_console(), max_pages=config.max_pages
                    )
                )
            try:
                stats = await crawler.run()
            finally:
                nursery.cancel_scope.cancel()
    if stats is None:
        stats = crawler.statistics()
    return code, stats


_FrontierUrl = Annotated[
    str, typer.Option("--frontier", metavar="URL", help="The crawl's Redis: redis://HOST:PORT/DB.")
]
_CrawlId = Annotated[
    str | None,
    typer.Option(
        metavar="NAME", help="The crawl's name \\[default: the only crawl in that database]."
    ),
]


@app.command(cls=FastCommand)
def status(
    frontier: _FrontierUrl,
    crawl_id: _CrawlId = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Refresh until the crawl finishes (or --count, Ctrl-C): a live view on a "
            "terminal, else one line (with --json, one object) per refresh.",
        ),
    ] = False,
    interval: Annotated[
        float,
        typer.Option(metavar="SECONDS", help="Seconds between --watch refreshes."),
    ] = 2.0,
    count: Annotated[
        int | None,
        typer.Option(metavar="N", help="Stop --watch after N refreshes."),
    ] = None,
) -> None:
    """Show a crawl shared through Redis: queue, leases, records, hosts and processes."""
    if not watch:
        for given, flag in ((interval != 2.0, "--interval"), (count is not None, "--count")):
            if given:
                raise UsageError(f"{flag}: needs --watch")
        print(trio.run(_fleet_call, "status", frontier, crawl_id, json_output))
        return
    if not (0.05 <= interval <= 3600):
        raise UsageError(f"--interval: must be from 0.05 to 3600 seconds, not {interval:g}")
    if count is not None and not (1 <= count <= 10**9):
        raise UsageError(f"--count: must be from 1 to 1000000000, not {count}")
    terminal = sys.stdout.isatty() and not json_output
    trio.run(_fleet_call, "watch", frontier, crawl_id, interval, count, json_output, terminal)


@app.command(cls=FastCommand)
def export(
    frontier: _FrontierUrl,
    crawl_id: _CrawlId = None,
    output: Annotated[
        str, typer.Option("-o", "--output", metavar="FILE", help="Record file (- = stdout).")
    ] = "-",
    format: Annotated[
        Format | None,
        typer.Option(
            metavar="jsonl|csv",
            help="jsonl or csv \\[default: from the output's extension, else jsonl].",
        ),
    ] = None,
    items: Annotated[
        str | None,
        typer.Option(
            "--items",
            metavar="FILE",
            help="Also write a scraper's items to FILE (- = stdout; .csv for CSV).",
        ),
    ] = None,
) -> None:
    """Write every record a Redis-shared crawl committed, each exactly once (and with
    --items, a scraper's items, each exactly once)."""
    out_format: OutputFormat = (
        format.value if format else ("csv" if output.lower().endswith(".csv") else "jsonl")
    )
    if items is not None and "\0" in items:
        raise UsageError(f"--items: not a file name: {shorten(items)}")
    if items is not None and items == output:
        raise UsageError("--items: give it another file than -o")
    items_format: OutputFormat = (
        "csv" if items is not None and items.lower().endswith(".csv") else "jsonl"
    )
    trio.run(_fleet_call, "export", frontier, crawl_id, output, out_format, items, items_format)


async def _fleet_call(command: str, frontier: str, crawl_id: str | None, *args: Any) -> Any:
    from ..model.config import check_crawl_id, parse_redis_url
    from . import fleet as _fleet  # imports coredis: only for these commands

    try:
        parse_redis_url(frontier)
    except ValueError as exc:
        raise UsageError(f"--frontier: {exc}") from None
    if crawl_id is not None:
        try:
            check_crawl_id(crawl_id)
        except ValueError as exc:
            raise UsageError(f"--crawl-id: {exc}") from None
    try:
        try:
            if command == "status":
                return await _fleet.status(frontier, crawl_id, as_json=args[0])
            if command == "watch":
                interval, count, as_json, terminal = args
                return await _fleet.watch(
                    frontier,
                    crawl_id,
                    interval=interval,
                    count=count,
                    as_json=as_json,
                    terminal=terminal,
                )
            return await _fleet.export(frontier, crawl_id, *args)
        except BaseExceptionGroup as group:  # from coredis's task group
            raise_single(group)
    except FrontierError as exc:
        if exc.usage:
            raise UsageError(str(exc)) from None
        raise


def _summary(stats: CrawlStatistics, stopped: str | None = None) -> str:
    """The one-line summary for a non-terminal stderr (``stopped``: see :func:`_stop_text`)."""
    errors = sum(stats.errors.values())
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in sorted(stats.errors.items()))
    detail = f": {kinds}" if kinds else ""
    text = (
        f"{PROG}: {_plural(stats.pages, 'page')} ({stats.ok:,} ok,"
        f" {_plural(errors, 'error')}{detail})"
        f" in {stats.elapsed:.2f}s, {stats.pages_per_second:.1f} pages/s"
    )
    if stats.browser_peak_memory is not None:
        text += (
            f"; rendered {stats.rendered} in Chromium "
            f"(peak {stats.browser_peak_memory / 1e6:.0f} MB)"
        )
    if recrawl := _recrawl_text(stats):
        text += f"; {recrawl}"
    if stats.worker_restarts:
        restarts = stats.worker_restarts
        if restarts == 1:
            text += "; 1 worker process died and was replaced"
        else:
            text += f"; {restarts:,} worker processes died and were replaced"
    if stopped:
        text += f"; {stopped}"
    return text


def _recrawl_text(stats: CrawlStatistics) -> str | None:
    """A recrawl round's changes, or None outside a recrawl."""
    counts = (stats.changed, stats.unchanged, stats.new, stats.gone, stats.unlinked)
    if not any(counts):
        return None
    changed, unchanged, new, gone, unlinked = counts
    return (
        f"recrawl: {changed:,} changed, {unchanged:,} unchanged, {new:,} new, {gone:,} gone,"
        f" {unlinked:,} no longer linked"
    )


def _stop_text(stats: CrawlStatistics, config: CrawlConfig, code: int) -> str | None:
    """What stopped a crawl that did not run out of URLs, and what it left: None when it
    finished by itself."""
    reason = stats.stop_reason
    left = f"{_plural(stats.queued, 'URL')} left unvisited"
    if reason == "max_pages":
        refused = stats.refused_by_max_pages
        text = f"stopped at --max-pages {config.max_pages}"
        if refused:
            text += f": {_plural(refused, 'more URL')} found and not crawled"
        else:  # a fleet's frontier counts for every process, and does not say how many
            text += " (counted for the whole fleet): more URLs were found and not crawled"
        return text + (f", {left}" if stats.queued else "")
    if reason == "deadline":
        return f"stopped by --deadline {config.deadline:g}s: {left}"
    if reason == "stopped":
        by = {130: "SIGINT", 143: "SIGTERM"}.get(code, "a stop request")
        return f"stopped by {by}: {left}"
    return None


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _warn_about_open_files(workers: int) -> None:
    """Say so when ``workers`` connections cannot all be open at once: past the process's
    open-file limit, connections fail (``connect`` records) instead of waiting."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):  # not POSIX
        return
    if limit != resource.RLIM_INFINITY and workers > limit - 64:  # files, pipes, the state
        logger.warning(
            "--workers %d is near or over the open-file limit (%d): connections past it fail "
            "as connect errors; raise it (ulimit -n) or use fewer workers",
            workers,
            limit,
        )


#: Options that do something only with another: (option, needs, what the other is).
_NEEDS = (
    ("render_wait", ("render", "render_auto", "render_if"), "--render"),
    ("render_wait_max", ("render", "render_auto", "render_if"), "--render"),
    ("render_tabs", ("render", "render_auto", "render_if"), "--render"),
    ("render_tab_pages", ("render", "render_auto", "render_if"), "--render"),
    ("render_resources", ("render", "render_auto", "render_if"), "--render"),
    ("browser", ("render", "render_auto", "render_if"), "--render"),
    ("render_wait_for", ("render", "render_auto", "render_if"), "--render"),
    ("render_wait_js", ("render", "render_auto", "render_if"), "--render"),
    ("render_delay", ("render", "render_auto", "render_if"), "--render"),
    ("screenshot", ("render", "render_auto", "render_if"), "--render"),
    ("cache_ttl", ("cache",), "--cache"),
    ("delay_jitter", ("delay",), "--delay"),
    ("crawl_id", ("frontier",), "--frontier"),
    ("lease", ("frontier",), "--frontier"),
    ("metrics_linger", ("metrics",), "--metrics"),
)
#: Options that do nothing at --depth 0 (no link is followed).
_FOLLOWING = ("follow", "include", "exclude", "no_frames", "skip_rel_nofollow")


def _warn_if_useless(given: Mapping[str, Any]) -> None:
    """Warn, once and in one line, of each option given that can have no effect (one that
    needs another not given, or that only matters when links are followed, at --depth 0)."""
    defaults = {name: p.default for name, p in options.signature().parameters.items()}

    def set_(name: str) -> bool:
        value = given.get(name, defaults.get(name))
        return name in given and value != defaults.get(name) and value not in (None, (), [])

    for name, needs, other in _NEEDS:
        if set_(name) and not any(set_(need) for need in needs):
            logger.warning(
                "warning: %s has no effect without %s", options.flag_of_parameter(name), other
            )
    if "depth" in given and str(given["depth"]) == "0":
        useless = [options.flag_of_parameter(name) for name in _FOLLOWING if set_(name)]
        if useless:
            logger.warning(
                "warning: %s %s no effect at --depth 0 (no link is followed)",
                ", ".join(useless),
                "has" if len(useless) == 1 else "have",
            )


def _did_you_mean(url: str) -> str:
    """`` (did you mean 'http://host:port/'?)`` for a URL given without its scheme."""
    if "://" in url or not url or url.startswith(("/", ".")):
        return ""
    try:
        canonicalize("http://" + url)
    except ValueError:
        return ""
    return f" (did you mean {shorten('http://' + url, 200)}?)"


def _setup_logging(*, quiet: bool, verbose: int) -> None:
    level = (
        logging.WARNING
        if quiet or verbose == 0
        else logging.INFO
        if verbose == 1
        else logging.DEBUG
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


# A seed line longer than this cannot be a URL (2,048 characters at most, once parsed): the
# file is not a list of URLs (or is /dev/zero), and reading on would only fill memory.
_MAX_SEED_LINE = 64 * 1024


def _read_seeds(path: Path) -> list[str]:
    name = shorten(str(path), 200)
    seeds = []
    try:
        with contextlib.ExitStack() as stack:
            stdin = str(path) == "-"
            file = sys.stdin.buffer if stdin else stack.enter_context(path.open("rb"))
            for number in itertools.count(1):
                raw = file.readline(_MAX_SEED_LINE + 1)
                if not raw:
                    break
                if len(raw) > _MAX_SEED_LINE:
                    raise UsageError(
                        f"--seeds-file: line {number} of {name} is longer than "
                        f"{_MAX_SEED_LINE:,} bytes: not a URL"
                    )
                if number == 1 and raw.startswith(codecs.BOM_UTF8):  # saved by Notepad
                    raw = raw[len(codecs.BOM_UTF8) :]
                line = raw.decode("utf-8", errors="replace").strip()
                if line and not line.startswith("#"):
                    seeds.append(line)
    except OSError as exc:
        raise UsageError(f"--seeds-file: cannot read {name}: {exc.strerror or exc}") from None
    except ValueError:  # a NUL in the path
        raise UsageError(f"--seeds-file: not a file name: {shorten(str(path))}") from None
    return seeds


def _fail(code: int, message: str) -> NoReturn:
    # One line, whatever a message quotes (values are shown with repr, but not every
    # library's message is): a line break is written as \n.
    message = message.replace("\r", "\\r").replace("\n", "\\n")
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(code)


def _config_defaults(args: list[str], group: Any = None) -> dict[str, Any]:
    """Option defaults for ``run``, ``crawl``, ``parse`` and ``shell`` from ``--config FILE``
    or ``[tool.trio-scrape]`` in ./pyproject.toml, and from the spider's ``options`` (``crawl
    SPIDER``, ``parse/shell --spider SPIDER``; the file's win over the spider's; the command
    line wins over both); keys are option names (``max-pages`` or ``max_pages``). ``parse``
    and ``shell`` take the fetch options of the table and pass over the crawl's others.

    ``group``: the app's click group, when the caller has built it already.

    Raises:
        UsageError: a key is no option of ``crawl``, or its value is of the wrong kind (named
            with its file, and a TOML spider's line).
    """
    _file_where.clear()
    if not args or args[0] not in ("run", "crawl", "parse", "shell"):
        return {}
    commands = (group or typer.main.get_command(app)).commands  # type: ignore[union-attr]
    params = {param.name: param for param in commands[args[0]].params}
    # the options a table may give: crawl's (a file shared by all commands)
    known = params if args[0] in ("run", "crawl") else {p.name: p for p in commands["crawl"].params}
    known = {name: param for name, param in known.items() if name != "config_file"}
    defaults: dict[str, Any] = {}
    spider = None
    if args[0] == "crawl":
        defaults["depth"] = str(SPIDER_DEPTH)
        spider = _spider_of(args)
    elif args[0] in ("parse", "shell"):
        spider = _spider_option(args)
    if spider is not None:
        name = f"SPIDER {shorten(str(spider.path), 200)}"
        # A TOML spider's errors name the key's line.
        lines = spider.option_lines or None
        defaults.update(_table_defaults(spider.options, name, known, lines, spider=True))
    found = _config_table(args)
    if found is not None:
        defaults.update(_table_defaults(*found, known))
    defaults = {name: value for name, value in defaults.items() if name in params}
    _file_named.clear()
    _file_named.update({name: list(defaults[name]) for name in _NAMED if defaults.get(name)})
    return defaults


#: Repeatable NAME=VALUE options: a config file's (or spider's) entries merge with the command
#: line's by NAME, the command line winning for a name it gives. Options in one group share
#: their names (``--select`` and ``--select-all`` both name fields of ``data``).
_NAMED = {"header": ("header", ":"), "select": ("select", "="), "select_all": ("select", "=")}
#: The config file's values of those options (set by _config_defaults).
_file_named: dict[str, list[str]] = {}


def _named_key(option: str, value: str) -> str:
    group, separator = _NAMED[option]
    name = value.partition(separator)[0].strip()
    return name.lower() if group == "header" else name


def _merge_named(given: dict[str, Any]) -> None:
    """Merge the file's NAME=VALUE entries with the command line's by NAME (in ``given``).

    A value that is not the file's list came from the command line (one that is, is the
    file's, or the same entries typed again: merged alike)."""
    typed: dict[str, set[str]] = {"header": set(), "select": set()}
    from_command_line = {
        option: bool(given.get(option)) and list(given[option]) != _file_named.get(option, [])
        for option in _NAMED
    }
    for option, typed_here in from_command_line.items():
        if typed_here:
            typed[_NAMED[option][0]] |= {_named_key(option, v) for v in given[option]}
    for option, typed_here in from_command_line.items():
        names = typed[_NAMED[option][0]]
        file_values = _file_named.get(option, [])
        if typed_here:
            kept = [v for v in file_values if _named_key(option, v) not in names]
            given[option] = [*kept, *given[option]]
        elif file_values:
            given[option] = [v for v in file_values if _named_key(option, v) not in names]


def _config_table(args: list[str]) -> tuple[dict[str, Any], str] | None:
    """The table of options of ``--config FILE``, else of ./pyproject.toml's
    ``[tool.trio-scrape]``, and where it is from; None when there is none."""
    path: Path | None = None
    for i, arg in enumerate(args):
        if arg == "--config":
            if i + 1 >= len(args):
                return None  # click reports the missing value
            path = Path(args[i + 1])
        elif arg.startswith("--config="):
            path = Path(arg.partition("=")[2])
    if path is not None:
        table = _read_toml(path, "--config")
        source = str(path)
    else:
        pyproject = Path("pyproject.toml")
        if not pyproject.is_file():
            return None
        try:
            project = _read_toml(pyproject, "pyproject.toml")
        except UsageError:
            return None  # a project file that is not ours to judge: crawl without it
        tool = project.get("tool")
        table = tool.get("trio-scrape", {}) if isinstance(tool, dict) else {}
        source = "pyproject.toml [tool.trio-scrape]"
    if not isinstance(table, dict):
        raise UsageError(f"{source}: expected a table of options")
    if path is not None and isinstance(table.get("routes"), dict):
        raise UsageError(
            f"{source}: a TOML spider (it has [routes]), not a file of options: run it with "
            f"`trio-scrape crawl {path}`"
        )
    return table, source


def _config_as_spider(args: list[str]) -> list[str]:
    """``parse URL --config spider.toml``: for ``parse`` and ``shell``, a ``--config`` file
    that is a TOML spider (it has a ``[routes]`` table) is the spider when ``--spider`` is
    not given, as if given with ``--spider`` (its ``[options]`` then apply as a spider's).
    Anything else is left as it is, for the options loader to judge."""
    if not args or args[0] not in ("parse", "shell"):
        return args
    if any(arg in ("--spider", "-s") or arg.startswith("--spider=") for arg in args):
        return args
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            path, rest = args[i + 1], [*args[:i], "--spider", args[i + 1], *args[i + 2 :]]
        elif arg.startswith("--config="):
            path, rest = arg.partition("=")[2], [*args[:i], "--spider", arg.partition("=")[2]]
            rest += args[i + 1 :]
        else:
            continue
        try:
            table = _read_toml(Path(path), "--config")
        except UsageError:
            return args  # the options loader says what is wrong with it, in one line
        return rest if isinstance(table.get("routes"), dict) else args
    return args


def _spider_option(args: list[str]) -> Any:
    """The spider ``parse`` or ``shell``'s ``--spider`` names, loaded (None: none)."""
    from .spider import load_spider

    path: str | None = None
    for i, arg in enumerate(args):
        if arg in ("--spider", "-s"):
            if i + 1 >= len(args):
                return None  # click reports the missing value
            path = args[i + 1]
        elif arg.startswith("--spider="):
            path = arg.partition("=")[2]
    return None if path is None else load_spider(Path(path))


def _spider_of(args: list[str]) -> Any:
    """The spider ``crawl``'s first argument names, loaded (None: no such argument)."""
    from .spider import load_spider

    if len(args) < 2 or args[1].startswith("-"):
        return None  # (--help, or click reports the missing SPIDER)
    return load_spider(Path(args[1]))


def _table_defaults(
    table: Mapping[str, Any],
    source: str,
    params: Any,
    lines: Mapping[str, int] | None = None,
    *,
    spider: bool = False,
) -> dict[str, Any]:
    """The command-line defaults of a table of options from ``source``; an error names the
    key, and its line when ``lines`` (a TOML spider's ``[options]``) has it. A spider's
    options (``spider``: its ``options``, or a TOML spider's ``[options]``) are named by the
    spider in every error about their values, even one found later; a ``--config`` file's by
    their flag, as the command line's are. A Python spider's ``None`` is no value: the
    option's default."""
    aliases = {"seeds": "urls", "url": "urls"}
    defaults: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        name = aliases.get(name, name)
        line = None if lines is None else lines.get(key)
        if line is not None:
            where = f"{source}: line {line}: options.{key}"
        else:
            where = f"{source}: options.{key}" if spider else f"{source}: {key}"
        if name not in params or name == "spider":
            if line is None:
                options_of = f"{source}: options" if spider else source
                raise UsageError(f"{options_of}: unknown option {shorten(key)}")
            raise UsageError(f"{where}: unknown option")
        if value is None and spider:
            continue
        defaults[name] = _file_value(where, value, params[name])
        opts = list(getattr(params[name], "opts", []))
        if opts and spider:  # errors about its value name the spider (and the line)
            _file_where[max(opts, key=len)] = (where, opts)
    return defaults


#: Where each option a TOML spider's [options] gives came from (its flag -> the file, key and
#: line, and the option's flags): an error about its value names the line, not the flag. (A
#: --config file's values are named by their flag, as the command line's are.)
_file_where: dict[str, tuple[str, list[str]]] = {}


def _named_by_file(message: str, args: list[str]) -> str:
    """``--workers: must be an integer, not 'x'`` as ``SPIDER 'x.toml': line 4:
    options.workers: ...`` when the value came from a TOML spider, not the command line."""
    flag, sep, rest = message.partition(": ")
    found = _file_where.get(flag) if sep else None
    if found is None:
        return message
    where, opts = found
    for arg in args:
        if arg in opts or any(arg.startswith(opt + "=") for opt in opts if opt.startswith("--")):
            return message  # the command line gave it
    return f"{where}: {rest}"


def _file_value(where: str, value: Any, param: Any) -> Any:
    """A config file's value as the command line would give it: a number is parsed from its
    text like a typed one (``workers = 1.5`` is refused, ``timeout = inf`` reaches the
    CrawlConfig check), a single value for a repeatable option becomes a list of one."""
    repeatable = bool(param.multiple) or param.nargs == -1
    if isinstance(value, list) and not repeatable:
        raise UsageError(f"{where}: expected one value, not a list")
    items = value if isinstance(value, list) else [value]
    converted: list[Any] = []
    for item in items:
        if isinstance(item, dict | list):
            kind = "table" if isinstance(item, dict) else "list"
            raise UsageError(
                f"{where}: expected {'values' if repeatable else 'a value'}, not a {kind}"
            )
        if isinstance(item, bool):
            converted.append(item if getattr(param, "is_flag", False) else str(item).lower())
        elif isinstance(item, int):
            converted.append(item if getattr(param, "count", False) else str(item))
        else:  # str, float (repr: 'inf', 'nan', '1e+30'), TOML dates and times
            converted.append(repr(item) if isinstance(item, float) else str(item))
    return converted if repeatable else converted[0]


_MAX_CONFIG_BYTES = 1024 * 1024


def _read_toml(path: Path, label: str) -> dict[str, Any]:
    name = shorten(str(path), 200)
    try:
        with path.open("rb") as file:
            data = file.read(_MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{label}: cannot read {name}: {exc.strerror or exc}") from None
    except ValueError:  # a NUL in the path
        raise UsageError(f"{label}: not a file name: {name}") from None
    if len(data) > _MAX_CONFIG_BYTES:  # not a configuration (or /dev/zero)
        raise UsageError(f"{label}: {name} is larger than {_MAX_CONFIG_BYTES:,} bytes")
    import tomllib  # only when there is a file to read (4 ms of a start otherwise)

    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:  # TOML is UTF-8 (a UTF-16 file, say, is not)
        raise UsageError(f"{label}: {name} is not UTF-8 text") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise UsageError(f"{label}: {name} is nested too deeply") from None
    except ValueError as exc:  # TOMLDecodeError, or an integer too long to convert
        raise UsageError(f"{label}: {name} is not valid TOML: {exc}") from None


# pydantic's words (typer converts option values with it) -> what the option must be
_MUST_BE = {"int": "an integer", "float": "a number", "bool": "true or false"}


def _parse_error(exc: Exception, message: str) -> str:
    """A typer/click error as one line; a value typer could not convert says what the option
    must be and shows the value: ``--workers: must be an integer, not 'x'``."""
    param = getattr(exc, "param", None)
    errors = getattr(exc.__cause__, "errors", None)  # a pydantic ValidationError
    if param is None or not callable(errors) or not param.opts:
        return " ".join(message.split())
    [first, *_] = errors() or [{}]
    kind = str(first.get("type", ""))
    choices = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    field = options.field_of(param.name)
    if (
        kind == "int_parsing_size" and field is not None and field in LIMITS
    ):  # more digits than pydantic reads
        must = f"must be at most {number(LIMITS[field].high)}"
    elif isinstance(choices, type) and issubclass(choices, enum.Enum):
        must = f"must be one of {', '.join(str(c.value) for c in choices)}"
    elif kind.partition("_")[0] in _MUST_BE:
        must = f"must be {_MUST_BE[kind.partition('_')[0]]}"
    else:
        return f"{max(param.opts, key=len)}: {' '.join(str(first.get('msg', message)).split())}"
    return f"{max(param.opts, key=len)}: {must}, not {shorten(first.get('input'))}"


# Options whose values are file paths. A Linux file name is bytes, not text: one that is not
# UTF-8 comes through Python's surrogateescape and goes back to the same bytes when the file is
# opened, so it is taken as given. Every other value (a URL, a host, a pattern, a header...) is
# text that gets encoded, and is refused at start-up (see _refuse_undecodable).
_PATH_OPTIONS = frozenset({"output", "seeds_file", "state", "cache", "config_file"})


def _undecodable(arg: str) -> bool:
    """Whether an argument held bytes that are not UTF-8: Python decodes the command line
    with surrogateescape, which leaves lone surrogates (``\\udcff``) any encode() refuses."""
    if arg.isascii():
        return False
    try:
        arg.encode()
    except UnicodeEncodeError:
        return True
    return False


def _refuse_undecodable(args: list[str]) -> None:
    """Raise UsageError, naming the option (or ``URL``), for the first argument whose bytes
    are not UTF-8, unless it is the value of a file path option (``_PATH_OPTIONS``). Without
    this the value reached whatever encodes it (the URL parser, a header) as a traceback."""
    if not any(map(_undecodable, args)):
        return
    group = typer.main.get_command(app)
    command: Any = None
    params = list(group.params)
    pending: Any = None  # the option whose value the next argument is
    positional_only = False

    def check(param: Any, value: str) -> None:
        if _undecodable(value) and param.name not in _PATH_OPTIONS:
            raise UsageError(f"{max(param.opts, key=len)}: must be UTF-8 text, not {_bytes(value)}")

    def valued(option: str) -> Any:
        for param in params:
            if option in param.opts and isinstance(param, typer.core.TyperOption):
                return None if param.is_flag or param.count else param
        return None

    for arg in args:
        if pending is not None:
            check(pending, arg)
            pending = None
        elif not positional_only and arg == "--":
            positional_only = True
        elif not positional_only and arg.startswith("--"):
            name, equals, value = arg.partition("=")
            param = valued(name)
            if param is not None and equals:
                check(param, value)
            elif param is not None:
                pending = param
            elif _undecodable(arg):
                raise UsageError(f"no such option {_bytes(arg)}")
        elif not positional_only and arg.startswith("-") and len(arg) > 1:
            for i in range(1, len(arg)):  # -q, -qv, -o FILE, -oFILE, -qoFILE
                param = valued("-" + arg[i])
                if param is not None:
                    if arg[i + 1 :]:
                        check(param, arg[i + 1 :])
                    else:
                        pending = param
                    break
            else:
                if _undecodable(arg):
                    raise UsageError(f"no such option {_bytes(arg)}")
        elif command is None and not positional_only:
            command = group.commands.get(arg)  # type: ignore[attr-defined]
            if command is None:
                if _undecodable(arg):
                    raise UsageError(f"no such command {_bytes(arg)}")
                return  # click says what is wrong
            params = list(command.params)
        elif _undecodable(arg):
            what = "URL" if command is not None and command.name == "run" else "argument"
            raise UsageError(f"{what}: must be UTF-8 text, not {_bytes(arg)}")


def _bytes(arg: str) -> str:
    """An argument as the bytes it was given as: ``b'\\xff'``."""
    try:
        return shorten(arg.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:  # a lone surrogate not from surrogateescape (main(argv) in-process)
        return shorten(arg)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app and turn every error into an exit code and one line."""
    args = argv if argv is not None else sys.argv[1:]
    try:
        _refuse_undecodable(args)
        args = _config_as_spider(args)
        # The click group, built once (each build walks every command's options: ~70 ms
        # of CPU, which a start would otherwise spend twice). Called as app() calls it.
        group = typer.main.get_command(app)
        defaults = _config_defaults(args, group)
        code = group(
            args,
            prog_name=PROG,
            standalone_mode=False,
            default_map={args[0]: defaults} if defaults else None,
        )
    except UsageError as exc:
        _fail(2, _named_by_file(str(exc), args))
    except (OutputError, WorkerError) as exc:
        _fail(1, str(exc))
    except FrontierError as exc:
        _fail(3, str(exc))
    except LoginFailed as exc:
        _fail(LOGIN_FAILED, f"log-in failed: {exc}")
    except Exception as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # click's Abort for a Ctrl-C
            _fail(130, "interrupted")
        # Typer/click parse errors (unknown option, bad number) carry exit_code and message.
        format_message = getattr(exc, "format_message", None)
        if format_message is None or not isinstance(getattr(exc, "exit_code", None), int):
            raise
        message = _named_by_file(_parse_error(exc, format_message()), args)
        _fail(exc.exit_code, message)  # type: ignore[attr-defined]
    except KeyboardInterrupt:  # a Ctrl-C before the crawl's own handler is installed
        _fail(130, "interrupted")
    sys.exit(code if isinstance(code, int) else 0)
