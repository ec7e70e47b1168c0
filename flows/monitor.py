"""What every flow run of ours shows in the Prefect UI, set up in one place.

A stage run (flows/driver.py, flows/train.py) and a pipeline run (flows/pipeline.py, which
a deployment's stage flow also runs through) enter `monitored`: in a flow run, the run's
log lines reach its Logs tab (flows/run_logs.py), the run is named and tagged by what it
does (flows/run_identity.py), and an error leaves the run's summary artifact with what to
do next before it propagates (flows/run_summary.py). Outside a flow run (plain calls in
tests) only the error path remains, and it publishes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from distillery.config import PipelineConfig
from flows import run_logs
from flows.reporting import in_flow
from flows.run_identity import identify_run
from flows.run_summary import on_failure


@contextmanager
def monitored(
    cfg: PipelineConfig, stage: str | None = None, summarized: tuple[type[BaseException], ...] = ()
) -> Iterator[None]:
    """Run the block as the current flow run of `stage` (None: the pipeline); `summarized`
    are errors the block publishes its own summary for."""
    if in_flow():
        run_logs.enable()
        identify_run(cfg, stage)
    with on_failure(cfg, stage or "pipeline", summarized):
        yield
