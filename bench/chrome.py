"""Headless Chromium's options, shared by the benchmark's page-load stage and the browser tests
(tests/conftest.py): one window size, no GPU, no background traffic. A module of its own, so the
tests take it without loading the benchmark's stages."""

from __future__ import annotations

import os
from typing import Any

# Debian's package of Chromium's headless shell: the same engine and DevTools protocol without the
# browser around it. Over the four browser-test files (`sa`, process accounting) it takes 83 s of
# CPU where Chromium takes 107 s, and 83 s of time instead of 93 s, on a suite that keeps both
# cores busy.
# The binary itself, not /usr/bin/chromium-headless-shell: that is a script that runs it as its
# child (no exec), so chromedriver's quit would end the script and leave the browser running.
HEADLESS_SHELL = "/usr/lib/chromium/chromium-headless-shell"


def chrome_options(shell: bool = False) -> Any:
    """The options for chromedriver. `shell`: run Chromium's headless shell when it is installed
    (the tests); otherwise, and for the benchmark (page loads as a browser makes them), Chromium
    in its headless mode."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    if shell and os.access(HEADLESS_SHELL, os.X_OK):
        options.binary_location = HEADLESS_SHELL  # headless, whatever the flags say
    else:
        options.add_argument("--headless=new")
    for arg in (
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ):
        options.add_argument(arg)
    return options
