"""Keep Prefect's console quiet about errors the user fixes by editing the config.

A ConfigError or LakeError raised inside a task (e.g. a source's text field that no row
has) fails the task, the stage's flow and the pipeline flow; Prefect's console handler
prints each failure with a full traceback before the CLI prints the one line that says
what to fix. `install()` adds a filter to the console handlers of this process that
drops those records (and Prefect's "Finished in state Failed(...)" lines that repeat the
message), so the CLI's line stands alone. The records still reach Prefect's API handler:
the run's logs in the UI keep the traceback.

Limit: with `task_runner: processes` (or Ray) a task's own failure is logged in the
worker process, whose console this filter does not reach.
"""

from __future__ import annotations

import logging

from distillery.config import ConfigError
from distillery.lake import LakeError

USER_ERRORS = (ConfigError, LakeError)


class UserErrorFilter(logging.Filter):
    """Drops records whose exception is a user error, and later records that repeat it."""

    def __init__(self, kinds: tuple[type[BaseException], ...] = USER_ERRORS) -> None:
        super().__init__()
        self.kinds = kinds
        self.messages: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, self.kinds):
            self.messages.add(str(exc))
            return False
        if self.messages and record.name.startswith("prefect"):
            text = record.getMessage()
            return not any(m in text or repr(m)[1:-1] in text for m in self.messages)
        return True


def install(extra: tuple[type[BaseException], ...] = ()) -> UserErrorFilter:
    """Add the filter to every console handler of this process's loggers (call after
    importing Prefect); `extra` are more exception types the caller reports in one line
    (an unreachable teacher, a stage over its quarantine share)."""
    from flows.run_logs import console_handlers

    quiet = UserErrorFilter(USER_ERRORS + extra)
    for handler in console_handlers():
        if not any(isinstance(f, UserErrorFilter) for f in handler.filters):
            handler.addFilter(quiet)
    return quiet
