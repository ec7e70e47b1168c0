"""Each flow run's own log lines reach its Logs tab in the UI; the terminal stays as it was.

Prefect's loggers follow PREFECT_LOGGING_LEVEL, which our processes set to WARNING
(distillery/app/prefect_env.py, prefect.toml) so that Prefect's chatter stays off the user's
terminal. The run loggers (`prefect.flow_runs`, `prefect.task_runs`, where `log_prints`
sends a flow's prints) inherited that level, so a stage's summary line, printed at INFO,
was dropped before Prefect's API handler saw it: every run's Logs tab said "This run didn't
generate logs".

`enable()` sets the run loggers to INFO, so the API handler (which the run loggers carry
themselves) sends their lines to the run's logs, and adds a filter to the console handlers
that drops run-logger records below WARNING, so the terminal shows what it showed before:
the CLI's own lines, progress lines off a terminal and the one-line errors. `warn()` says a
warning on both: a plain line on stderr, and a WARNING in the run's logs. Each task run's
"Finished in state Completed()" stays out of the logs (TaskCompletedFilter), so that a stage
run's Logs tab reads as the stage's own lines, not one line per partition.

It is called when a stage or pipeline flow starts (flows/pipeline.py, flows/driver.py,
flows/train.py), not at import: Prefect re-applies its logging configuration when a server
starts in-process, which would reset the levels set at import.
"""

from __future__ import annotations

import logging
import sys

RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
PRINTED = "distillery_printed"  # a record's attribute: its text is on the terminal already (warn)


class RunChatterFilter(logging.Filter):
    """Drops run-logger records below WARNING (when `quiet_info`: they go to the run's logs in
    the UI instead) and records whose text `warn` has already written to the terminal."""

    def __init__(self, quiet_info: bool = True) -> None:
        super().__init__()
        self.quiet_info = quiet_info

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, PRINTED, False):
            return False
        return not (self.quiet_info and record.levelno < logging.WARNING and record.name.startswith(RUN_LOGGERS))


class TaskCompletedFilter(logging.Filter):
    """Drops a task run's "Finished in state Completed()" line: one per partition and step,
    hundreds in a stage run's logs, burying its own lines; the Task Runs tab has the same.
    A task that fails, or that prints or warns, still logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.INFO and str(record.msg).startswith("Finished in state Completed"))


def console_handlers() -> list[logging.Handler]:
    """The handlers of this process's loggers that write to the console: Prefect's console
    handler, or a plain stream handler of a user's logging config; not a capturing handler
    (pytest's subclass StreamHandler) nor Prefect's API handler."""
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger()] + [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    handlers = {h for lg in loggers for h in lg.handlers}
    return [h for h in handlers if isinstance(h, PrefectConsoleHandler) or type(h) is logging.StreamHandler]


def enable() -> None:
    """Send INFO and above of the run loggers to Prefect's API, not to the console (idempotent).

    Where the run loggers already log INFO (a user who set PREFECT_LOGGING_LEVEL=INFO or
    DEBUG) their lines stay on the console too, as Prefect prints them."""
    raised = False
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
            raised = True
    tasks = logging.getLogger("prefect.task_runs")
    if not any(isinstance(f, TaskCompletedFilter) for f in tasks.filters):
        tasks.addFilter(TaskCompletedFilter())
    for handler in console_handlers():
        if not any(isinstance(f, RunChatterFilter) for f in handler.filters):
            handler.addFilter(RunChatterFilter(quiet_info=raised))


def warn(text: str) -> None:
    """A warning for the person at the terminal and for the run's Logs tab alike: a line on
    stderr, as before there were run logs, and in a flow or task run also the run logger's
    WARNING, which the console filter keeps off the terminal (it is there already)."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    sys.stderr.write(text + "\n")  # not print: log_prints turns a flow's prints into INFO records
    sys.stderr.flush()
    try:
        logger = get_run_logger()
    except MissingContextError:
        return
    enable()
    logger.warning(text, extra={PRINTED: True})
