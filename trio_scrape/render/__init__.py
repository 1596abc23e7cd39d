"""Rendering in headless Chromium: the DevTools client, the browser process, the renderer,
the SOCKS guard.

Internal: the public API is what ``trio_scrape`` exports."""
