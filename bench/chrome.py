"""Headless Chromium's options, shared by the benchmark's page-load stage and the browser tests
(tests/conftest.py): one window size, no GPU, no background traffic. A module of its own, so the
tests take it without loading the benchmark's stages."""

from __future__ import annotations

from typing import Any


def chrome_options() -> Any:
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
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
