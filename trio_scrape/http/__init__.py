"""Fetching: the private-address guard, the HTTP/1.1 transport, response headers, the fetcher.

Internal: the public API is what ``trio_scrape`` exports."""
