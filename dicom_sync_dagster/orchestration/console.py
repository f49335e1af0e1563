"""The jobs' console logger: Dagster's colored one, without the stack trace of an expected
failure (a ``Failure`` an op raised: a node down, a series not transferred, a bad setting).

`dicom-sync run` then prints one line per such failure; the full trace of every failure stays in
the run's event log (the UI), and an unexpected exception keeps its trace on the console too.
"""

from __future__ import annotations

import logging

from dagster import InitLoggerContext, colored_console_logger, logger

TRACE_MARK = "\n\nStack Trace:"
EXPECTED = "Failure"  # dagster.Failure: raised by our ops with a description that says why


def _without_expected_trace(record: logging.LogRecord) -> bool:
    event = getattr(record, "dagster_event", None)
    error = getattr(getattr(event, "event_specific_data", None), "error", None)
    if getattr(error, "cls_name", None) == EXPECTED and isinstance(record.msg, str):
        record.msg = record.msg.split(TRACE_MARK, 1)[0]
    return True


@logger(
    config_schema=colored_console_logger.config_schema,
    description="Dagster's colored console logger; expected failures without a stack trace.",
)
def concise_console_logger(init_context: InitLoggerContext) -> logging.Logger:
    console = colored_console_logger.logger_fn(init_context)
    for handler in console.handlers:
        handler.addFilter(_without_expected_trace)
    return console
