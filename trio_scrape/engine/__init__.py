"""The crawl: the per-page pipeline, robots.txt, and the Crawler that orchestrates them.

Internal: the public API is what ``trio_scrape`` exports."""
