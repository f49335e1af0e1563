"""Debian's Chromium driven by Playwright, and the Dagster UI pages the browser test reads.

Playwright's pip package brings no browser; it drives the system's ``chromium`` (Debian
package ``chromium``). The browser resolves no host name but 127.0.0.1, so the page, and
Chromium's own background traffic, cannot leave loopback.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from playwright.sync_api import Page, expect, sync_playwright

from dicom_sync_dagster.sandbox import LOOPBACK

REPO = Path(__file__).resolve().parents[1]
VIEWPORT = {"width": 1500, "height": 1100}  # the README's screenshot size
ELEMENT_SECONDS = 60  # the Dagster UI is a heavy React app: generous on a loaded machine
CHROMIUM_ARGS = [
    f"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE {LOOPBACK}",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def chromium_binary() -> str | None:
    return shutil.which("chromium")


def artifacts_dir() -> Path:
    """Where screenshots go: ``$DICOM_SYNC_ARTIFACTS``, else ``artifacts/`` in the repo."""
    folder = Path(os.environ.get("DICOM_SYNC_ARTIFACTS") or REPO / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def chromium_page(foreign_requests: list[str]) -> Iterator[Page]:
    """A headless Chromium page; every request to a host other than 127.0.0.1 is appended to
    ``foreign_requests`` (and fails: the browser resolves no other name)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_binary(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(ELEMENT_SECONDS * 1000)
            expect.set_options(timeout=ELEMENT_SECONDS * 1000)
            page.on(
                "request",
                lambda request: (
                    urlsplit(request.url).hostname not in (LOOPBACK, None)
                    and foreign_requests.append(request.url)
                ),
            )
            yield page
        finally:
            browser.close()


# -- Launchpad ---------------------------------------------------------------------------------


def launchpad_url(base: str, location: str, job: str) -> str:
    return f"{base}/locations/{location}/jobs/{job}/playground"


def launchpad_config(page: Page) -> dict:
    """The config the Launchpad's editor holds (prefilled, or as edited), parsed."""
    page.locator(".CodeMirror").wait_for()
    text = page.evaluate("document.querySelector('.CodeMirror').CodeMirror.getValue()")
    return yaml.safe_load(text)


def paste_launchpad_config(page: Page, config: dict) -> None:
    """Replace the editor's text the way a user pastes a block: select all, paste."""
    page.locator(".CodeMirror").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(yaml.safe_dump(config, sort_keys=False))
    page.keyboard.press("Control+Home")  # back to the top, where ops.start_cycle is
    expect(page.get_by_text("Checking config")).to_be_hidden()  # Dagster's check has answered


def launch(page: Page) -> str:
    """Click Launch Run (once Dagster's config check lets it) and return the new run's id."""
    button = page.get_by_role("button", name="Launch Run")
    expect(button).to_be_enabled()
    button.click()
    page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[1]


# -- the run page ------------------------------------------------------------------------------


def wait_for_run_end(page: Page, seconds: float) -> str:
    """``RUN_SUCCESS`` or ``RUN_FAILURE``, as the run page's event log shows it."""
    end = page.get_by_text(re.compile(r"^RUN_(SUCCESS|FAILURE)$")).first
    end.wait_for(timeout=seconds * 1000)
    return end.inner_text().strip()


def output_metadata(page: Page, entry_label: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The metadata of the step output with an entry labelled ``entry_label`` in the run page's
    event log, as it is rendered there (no click: the row's text, also the part below its
    fold): the plain entries by label, and the rows of its one table entry by column."""
    labelled = page.locator("td", has_text=re.compile(rf"^\s*{re.escape(entry_label)}\s*$"))
    row = (
        page.locator("div[class*='LogsRowComponents_row']")
        .filter(has_text="Yielded output")
        .filter(has=labelled)
    )
    row.wait_for()
    metadata = row.locator("table").first  # the entries; a table entry nests a table
    entries: dict[str, str] = {}
    for entry in metadata.locator(":scope > tbody > tr").all():
        label, value = entry.locator(":scope > td").all_text_contents()
        entries[label.strip()] = value.strip()
    table = metadata.locator("table")
    header = [text.strip() for text in table.locator("th").all_text_contents()]
    rows = []
    for tr in table.locator("tbody > tr").all():
        cells = [text.strip() for text in tr.locator("td").all_text_contents()]
        rows.append(dict(zip(header, cells, strict=True)))
    return entries, rows
