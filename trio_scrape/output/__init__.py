"""Where records go: the JSON Lines and CSV sinks.

Internal: the public API is what ``trio_scrape`` exports."""
