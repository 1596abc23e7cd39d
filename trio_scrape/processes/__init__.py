"""Worker processes: the pool, the child's loop, and the wire format between them.

Internal: the public API is what ``trio_scrape`` exports."""
