"""Values and pure functions: page records and requests, configuration and its checks,
URLs and origins, HTML parsing.

Internal: the public API is what ``trio_scrape`` exports."""
