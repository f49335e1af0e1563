"""Bounded storage: both dagster.yaml files purge old schedule and sensor ticks, skipped ones
sooner than failed ones. The files go through Dagster's own config schema, and the purge runs
on a real instance made from the project's dagster.yaml with the retention Dagster read from
it, as its scheduler does after each tick (dagster/_scheduler/scheduler.py)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.instance.config import dagster_instance_config
from dagster._core.scheduler.instigation import TickData, TickStatus
from dagster._utils.error import SerializableErrorInfo

REPO = Path(__file__).resolve().parents[1]
DAY = 24 * 3600
ORIGIN, SELECTOR = "origin-of-every_minute", "selector-of-every_minute"


@pytest.mark.parametrize("name", ["dagster.yaml", "deploy/dagster.yaml"])
@pytest.mark.parametrize("kind", ["schedule", "sensor"])
def test_both_instances_purge_skipped_ticks_within_days_and_failures_later(tmp_path, name, kind):
    shutil.copy(REPO / name, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))  # validates against Dagster's schema
    days = config["retention"][kind]["purge_after_days"]
    assert 0 < days["skipped"] <= 7
    assert days["failure"] > days["skipped"]
    assert all(days[status] > 0 for status in ("success", "failure", "started"))


def _tick(instance, status: TickStatus, days_ago: float) -> int:
    tick = instance.create_tick(
        TickData(
            instigator_origin_id=ORIGIN,
            instigator_name="every_minute",
            instigator_type=InstigatorType.SCHEDULE,
            status=status,
            timestamp=time.time() - days_ago * DAY,
            selector_id=SELECTOR,
            run_ids=[],
            run_keys=[],
            error=SerializableErrorInfo("remote down", [], "Failure")
            if status == TickStatus.FAILURE
            else None,
        )
    )
    return tick.tick_id


def test_the_project_instance_drops_old_skipped_ticks_and_keeps_failures(tmp_path):
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        old_skip = _tick(instance, TickStatus.SKIPPED, 8)
        new_skip = _tick(instance, TickStatus.SKIPPED, 1)
        old_failure = _tick(instance, TickStatus.FAILURE, 8)
        old_success = _tick(instance, TickStatus.SUCCESS, 8)
        settings = instance.get_tick_retention_settings(InstigatorType.SCHEDULE)
        for status, days in settings.items():
            if days > 0:
                before = time.time() - days * DAY
                instance.purge_ticks(ORIGIN, SELECTOR, before=before, tick_statuses=[status])
        kept = {tick.tick_id for tick in instance.get_ticks(ORIGIN, SELECTOR)}

    assert old_skip not in kept
    assert {new_skip, old_failure, old_success} <= kept
