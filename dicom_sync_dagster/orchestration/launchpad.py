"""The sync job's run config as the Launchpad shows it, prefilled with the route's choices.

A job-level ``ConfigMapping``: its schema is what Dagster checks while the user types (the
mode is a selector, so ``fewer_than`` without ``image_limit`` is refused there) and its field
defaults are the route's mode and window, so the Launchpad opens with them and a run config
that names only some fields (the schedule's: ``reference_time``) keeps the rest. Its function
turns the choices into ``start_cycle``'s flat config and refuses what the schema cannot
express (ranges, a time) with the config path, before a run is created.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from dagster import (
    ConfigMapping,
    DagsterInvalidConfigError,
    Field,
    JobDefinition,
    Noneable,
    Permissive,
    Selector,
    Shape,
)

from ..core.selection import Mode, Selection, limit_problem
from ..options import WINDOW_HOURS
from ..routes import OPTION_DEFAULTS, Route
from ..settings import IMAGE_LIMIT, MODE, ConfigError, check_selection

CONFIG_PATH = "ops.start_cycle.config"
PASSED_ON = ("execution", "loggers")  # Dagster's own fields, checked as before


def route_choices(route: Route, env: Mapping[str, str] = os.environ) -> tuple[Selection, float]:
    """The route's mode and window as the code location loads; a bad mode setting gives
    ``smallest`` here (the run then fails naming the setting, as before)."""
    if route.from_env:
        mode, limit = env.get(MODE), env.get(IMAGE_LIMIT)
    else:
        mode, limit = str(route.options["mode"]), str(route.options["image_limit"])
    try:
        selection = check_selection(mode, limit)
    except ConfigError:
        selection = Selection()
    return selection, float(route.options.get("window_hours", OPTION_DEFAULTS["window_hours"]))


def mode_value(selection: Selection) -> dict[str, Any]:
    """A selection as the mode selector writes it, e.g. ``{"fewer_than": {"image_limit": 5}}``."""
    if selection.mode is Mode.fewer_than:
        return {Mode.fewer_than.value: {"image_limit": selection.image_limit}}
    return {selection.mode.value: {}}


def _no_options(description: str) -> Field:
    # Noneable: `all: {}` and `all:` both do, and the Launchpad keeps the `{}` it prefills.
    return Field(Noneable(Shape({})), is_required=False, description=description)


MODE_SCHEMA = Selector(
    {
        Mode.smallest.value: _no_options("Per study, the one series with the fewest images."),
        Mode.fewer_than.value: Field(
            Shape(
                {
                    "image_limit": Field(
                        int,
                        description="A whole number >= 1: every series with fewer images than "
                        "this is moved.",
                    )
                }
            ),
            description="Every series with fewer than image_limit images.",
        ),
        Mode.all.value: _no_options("Every series."),
    }
)


def start_cycle_schema(selection: Selection, window_hours: float) -> Shape:
    """The choices of one run, with the route's as defaults."""
    return Shape(
        {
            "mode": Field(
                MODE_SCHEMA,
                default_value=mode_value(selection),
                description="Which series of a study to move: smallest: {} | fewer_than: "
                "{image_limit: N} (N >= 1) | all: {}. Only series not yet complete on the "
                "local PACS are moved. Prefilled: the route's mode.",
            ),
            "window_hours": Field(
                float,
                default_value=window_hours,
                description=f"Studies acquired within this many hours before reference_time "
                f"({WINDOW_HOURS.bounds}). Prefilled: the route's window.",
            ),
            "catch_up": Field(
                bool,
                default_value=True,
                description="true: after an outage the window stretches back to the last run "
                "that examined the remote (at most the route's catch_up_max_hours); false: "
                "exactly window_hours.",
            ),
            "dry_run": Field(
                bool, default_value=False, description="Plan and report, but move nothing."
            ),
            "reference_time": Field(
                str,
                default_value="",
                description="ISO 8601 time the window ends at, e.g. 2026-03-01T08:00:00 (no "
                "offset: the PACS zone); empty: the schedule tick, or now.",
            ),
        }
    )


def _refuse(problem: str, value: object) -> DagsterInvalidConfigError:
    return DagsterInvalidConfigError(problem, [], value)


def op_config(choices: Mapping[str, Any]) -> dict[str, Any]:
    """``start_cycle``'s config from the Launchpad's choices; refuses a value out of range."""
    [(mode, options)] = choices["mode"].items()
    config: dict[str, Any] = {"mode": mode}
    if mode == Mode.fewer_than.value:
        limit = options["image_limit"]
        problem = limit_problem(f"{CONFIG_PATH}.mode.fewer_than.image_limit", limit)
        if problem:
            raise _refuse(problem, limit)
        config["image_limit"] = limit
    hours = choices["window_hours"]
    problem = WINDOW_HOURS.problem(f"{CONFIG_PATH}.window_hours", hours)
    if problem:
        raise _refuse(problem, hours)
    reference = choices["reference_time"]
    if reference:
        try:
            datetime.fromisoformat(reference)
        except ValueError:
            problem = f"{CONFIG_PATH}.reference_time={reference!r} is not an ISO 8601 time"
            raise _refuse(problem, reference) from None
    config.update(
        window_hours=float(hours),
        catch_up=choices["catch_up"],
        dry_run=choices["dry_run"],
        reference_time=reference,
    )
    return config


def sync_config_mapping(job: JobDefinition, route: Route) -> ConfigMapping:
    """The run config of ``job`` (built without one) as the Launchpad shows it."""
    selection, hours = route_choices(route)
    inner = cast(Shape, job.run_config_schema.config_type)  # a job's run config is a Shape
    fields: dict[str, Field] = {
        "ops": Field(
            Shape(
                {
                    "start_cycle": Field(
                        Shape({"config": Field(start_cycle_schema(selection, hours))})
                    )
                }
            )
        ),
        # Checked against the resources' own schema when the run is launched.
        "resources": Field(
            Permissive(),
            is_required=False,
            description="Resource settings for this run only, e.g. sync_options: {config: "
            "{dimse_timeout: 60}}; the fields not named keep the route's values.",
        ),
        **{name: inner.fields[name] for name in PASSED_ON if name in inner.fields},
    }
    bound = inner.fields["resources"].default_value if "resources" in inner.fields else {}

    def to_run_config(outer: Mapping[str, Any]) -> dict[str, Any]:
        choices = outer["ops"]["start_cycle"]["config"]
        run_config = {"ops": {"start_cycle": {"config": op_config(choices)}}}
        run_config.update({k: v for k, v in outer.items() if k in PASSED_ON and v})
        if outer.get("resources"):
            run_config["resources"] = _with_bound_values(outer["resources"], bound)
        return run_config

    return ConfigMapping(config_fn=to_run_config, config_schema=Shape(fields))


def _with_bound_values(chosen: Mapping[str, Any], bound: Mapping[str, Any]) -> dict[str, Any]:
    """A run's resource block over the route's values: Dagster would otherwise reset every
    field the block leaves out to the class default (the route's name, zone, mode...)."""
    merged: dict[str, Any] = {}
    for name, value in chosen.items():
        own = (bound.get(name) or {}).get("config")
        given = value.get("config") if isinstance(value, Mapping) else None
        if isinstance(own, Mapping) and isinstance(given, Mapping):
            value = {**value, "config": {**own, **given}}
        merged[name] = value
    return merged
