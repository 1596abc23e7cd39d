"""The command line: start-up, the Typer app, and the commands beside ``run``.

Internal: the public API is what ``trio_scrape`` exports."""
