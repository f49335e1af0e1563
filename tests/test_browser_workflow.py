"""The README's UI workflow in a real browser: Debian's Chromium, driven by Playwright, on
`dagster dev` against two Orthanc servers (the `site` fixture).

Launchpad of the sync job -> mode `all` -> Launch Run -> the run page's report (summary line and
transfers table, read from the page); with the mode selector of issue 13 also: `fewer_than`
without a limit refused by the Launchpad; then a failed run (the remote stopped) found in the
runs list by its outcome tag. Screenshots go to `artifacts/` (or `$DICOM_SYNC_ARTIFACTS`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient
from playwright.sync_api import Page, expect

from dicom_sync_dagster.orchestration.tags import CAUSE_TAG, OUTCOME_TAG
from dicom_sync_dagster.sandbox import LOOPBACK
from dicom_sync_dagster.synthetic import SyntheticStudy

from .browser import (
    artifacts_dir,
    chromium_page,
    launch,
    launchpad_config,
    launchpad_url,
    output_metadata,
    paste_launchpad_config,
    wait_for_run_end,
)
from .conftest import _require
from .support.dagster_dev import RUN_SECONDS, TERMINAL, clean_env, start_dagster_dev
from .test_dagster_dev import JOB, _failures

pytestmark = pytest.mark.servers  # two Orthanc servers, dagster dev and Chromium


def with_mode(config: dict, mode: str, options: dict | None = None) -> dict:
    """The Launchpad's prefilled config with start_cycle's mode changed to ``mode``, written
    the way the prefill writes it: a selector (``mode: {all: {}}``, issue 13) where the
    Launchpad prefills one, else the README's ``mode: all`` (``options`` beside it)."""
    fields = config["ops"]["start_cycle"]["config"]
    if isinstance(fields.get("mode"), dict):
        fields["mode"] = {mode: options or {}}
    else:
        fields["mode"] = mode
        fields.update(options or {})
    return config


def mode_is_selector(config: dict) -> bool:
    return isinstance(config["ops"]["start_cycle"]["config"].get("mode"), dict)


@contextlib.contextmanager
def screenshot_on_failure(page: Page, name: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=artifacts_dir() / name)
        raise


def test_readme_ui_workflow_in_chromium(site, tmp_path):
    _require("chromium", "chromium")
    first = site.add_remote(SyntheticStudy(site.ago(hours=1), [2, 5], accession="UI-1"))
    second = site.add_remote(SyntheticStudy(site.ago(hours=3), [3], accession="UI-2"))
    expected = {
        (study.accession, str(number + 1)): str(size)
        for study in (first, second)
        for number, size in enumerate(study.series_sizes)
    }
    artifacts = artifacts_dir()
    foreign: list[str] = []
    timings: dict[str, float] = {}
    started = time.monotonic()
    # The schedule stopped: no tick launches a run of its own during the test.
    env = clean_env(site.env(), {"DICOM_SYNC_SCHEDULE": "off"})
    env.pop("DICOM_SYNC_MODE", None)
    dev = start_dagster_dev(tmp_path, env)
    try:
        with dev.log_on_failure():
            location = dev.wait_until_loaded()["name"]
            timings["dagster dev up"] = time.monotonic() - started
            base = f"http://{LOOPBACK}:{dev.port}"
            # Chromium starts once dagster dev is up: not both at once on a loaded machine.
            with (
                chromium_page(foreign) as page,
                screenshot_on_failure(page, "browser-failure.png"),
            ):
                # 1. Launchpad: the prefilled config, mode changed to `all`, Launch Run.
                page.goto(launchpad_url(base, location, JOB))
                config = launchpad_config(page)
                selector = mode_is_selector(config)
                paste_launchpad_config(page, with_mode(config, "all"))
                page.screenshot(path=artifacts / "browser-launchpad.png")
                mark = time.monotonic()
                run_id = launch(page)

                # 2. The run page: its end, the report's summary line and transfers table.
                end = wait_for_run_end(page, RUN_SECONDS)
                timings["launch to run end"] = time.monotonic() - mark
                page.screenshot(path=artifacts / "browser-run-page.png")
                if end != "RUN_SUCCESS":
                    with DagsterInstance.from_config(str(dev.home)) as instance:
                        pytest.fail(f"{end}: {_failures(instance, run_id)}")
                entries, transfers = output_metadata(page, "summary")  # the report's output
                assert entries["summary"].startswith("3/3 series, 10 images, "), entries
                assert entries["summary"].endswith(" images/min; 0 failed"), entries
                assert entries["mode"] == "all series", entries
                assert (entries["series_transferred"], entries["images_moved"]) == ("3", "10")
                assert {(r["accession"], r["series_number"]): r["images"] for r in transfers} == (
                    expected
                )
                assert {r["outcome"] for r in transfers} == {"success"}, transfers
                assert site.local.instance_count() == 10

                timings["report read"] = time.monotonic() - started

                # 3. fewer_than without image_limit: Dagster's config check refuses it in the
                # Launchpad (with the mode selector of issue 13; before it the run failed later).
                assert selector, "the Launchpad prefills no mode selector"
                page.goto(launchpad_url(base, location, JOB))
                paste_launchpad_config(page, with_mode(launchpad_config(page), "fewer_than"))
                refusal = 'Missing required config entry "image_limit"'  # Dagster's words
                expect(page.get_by_text(refusal)).to_be_visible()
                expect(page.get_by_role("button", name="Launch Run")).to_be_disabled()
                page.screenshot(path=artifacts / "browser-fewer-than-refused.png")

                # 4. A failed run (the remote stopped), found in the runs list by its outcome tag.
                site.remote.stop()
                client = DagsterGraphQLClient(LOOPBACK, port_number=dev.port)
                failed_id = client.submit_job_execution(JOB, run_config={})
                deadline = time.monotonic() + RUN_SECONDS
                while client.get_run_status(failed_id) not in TERMINAL:
                    assert time.monotonic() < deadline, f"run {failed_id} did not end"
                    time.sleep(0.5)
                assert client.get_run_status(failed_id) == DagsterRunStatus.FAILURE
                timings["up to the failed run"] = time.monotonic() - started
                page.goto(f"{base}/runs?q%5B0%5D={quote(f'tag:{OUTCOME_TAG}=failed', safe='')}")
                # The runs list links each run by its id; the filter leaves the failed one only.
                expect(page.locator(f'a[href="/runs/{failed_id}"]').first).to_be_visible()
                expect(page.get_by_text(f"{CAUSE_TAG}: remote unreachable")).to_have_count(1)
                expect(page.locator(f'a[href="/runs/{run_id}"]')).to_have_count(0)
                page.screenshot(path=artifacts / "browser-failed-runs.png")
    finally:
        dev.stop()
        timings["whole test"] = time.monotonic() - started
        print(", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()))
    assert foreign == [], f"the page asked for hosts other than {LOOPBACK}: {foreign}"
