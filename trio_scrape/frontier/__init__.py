"""What to crawl next: the frontiers (memory; SQLite for ``--state``; Redis for a fleet),
per-host pacing, seen-sets, and opening a frontier to resume or join.

Internal: the public API is what ``trio_scrape`` exports."""
