"""`distillery`: run the pipeline, ask the lake questions, check its accounting.

distillery run [CONFIG] [--stages gather,curate,...] [--lake DIR] [--serve-teacher]
distillery sql "QUERY" [--format table|csv|json] [--lake DIR]
distillery status [--lake DIR]
distillery teacher serve [--host H] [--port P]
distillery train [CONFIG] [--resume]
distillery shards verify|show|path ...
distillery explain ID [--lake DIR]
distillery ui [--port P]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from distillery.app.prefect_env import configure
from distillery.app.run_process import interrupts_end_the_run, own_prefect_server, prefect_ready
from distillery.stage_names import STAGES


def _lake_from(args: argparse.Namespace) -> Path:
    """--lake, else DISTILLERY_LAKE, else the config's (the demo's `lake` in this folder):
    load_config applies the environment, as for `run`."""
    from distillery.config import load_config

    flag = getattr(args, "lake", None)
    return load_config(getattr(args, "config", None), {"lake": str(Path(flag).resolve())} if flag else None).lake_root


def cmd_run(args: argparse.Namespace) -> int:
    with interrupts_end_the_run():
        done = _run_if_up_to_date(args)
        if done is not None:
            return done
        with own_prefect_server() as spawned:
            return _run(args, spawned)


def _run_if_up_to_date(args: argparse.Namespace) -> int | None:
    """A re-run that finds every chosen stage up to date (distillery/plans.py) ends here,
    without a Prefect server or flow runs: it records each stage's `runs` row as the stage
    would, checks the accounting and prints the summary. None: there is work (or something
    to report), so the full run goes on."""
    from distillery.config import load_config

    cfg = load_config(args.config, {"lake": str(Path(args.lake).resolve())} if args.lake else None)
    chosen = [s.strip() for s in args.stages.split(",")] if args.stages else None
    if (args.config is None and not _demo_samples_ready()) or set(chosen or []) - set(cfg.stages):
        return None  # the demo's samples to make, or a --stages list for the full run to judge
    from distillery.plans import up_to_date

    rows = up_to_date(cfg, [s for s in cfg.stages if not chosen or s in chosen])
    if not rows:
        return None
    import datetime as dt

    from distillery import accounting
    from distillery.lake import Lake

    lake, now = Lake(cfg.lake_root), dt.datetime.now(dt.timezone.utc)
    run_id = "local-" + now.strftime("%Y%m%dT%H%M%S%f")
    for r in rows:
        accounting.record_run(
            lake,
            run_id,
            r["stage"],
            r["batch"],
            now,
            accounting.total([], r["stage"]),
            r["skipped"],
            r["note"],
            cfg.env_overrides,
        )
    for r in rows:
        print(r["says"])
    print(f"up to date: {', '.join(r['stage'] for r in rows)} have nothing new to do (no Prefect run started)")
    status = accounting.check(lake)
    _print_summary({"status": status.render()}, cfg.lake_root)
    if not status.ok:
        print("the lake's accounting does not add up:\n" + "\n".join(status.problems), file=sys.stderr)
        return 1
    return 0


def _demo_samples_ready() -> bool:
    from distillery.app.sample_data import samples_complete

    return samples_complete(Path("samples"))


def _run(args: argparse.Namespace, spawned) -> int:
    from distillery.config import load_config

    overrides = {"lake": str(Path(args.lake).resolve())} if args.lake else None
    cfg = load_config(args.config, overrides)  # validated before anything starts
    stages = [s.strip() for s in args.stages.split(",")] if args.stages else None
    if stages:
        unknown = sorted(set(stages) - set(STAGES))
        if unknown:
            print(f"--stages: unknown stage(s) {', '.join(unknown)}; allowed: {', '.join(STAGES)}", file=sys.stderr)
            return 2
    if args.config is None:  # the demo: its sample corpus is generated, not downloaded
        from distillery.app.sample_data import make_samples

        if not _demo_samples_ready():
            make_samples(Path("samples"))
        args.serve_teacher = True
    server = None
    if args.serve_teacher:
        from urllib.parse import urlparse

        from teacher.server import start_server

        url = urlparse(cfg.distill.base_url)
        server = start_server(host=url.hostname or "127.0.0.1", port=url.port or 8765)
        print(f"reference teacher serving at {server.url}")
    try:
        from distillery.app.quiet_errors import install
        from flows.limits import SlotWaitTimeout
        from flows.pipeline import pipeline  # imported while our Prefect server starts
        from flows.reporting import QuarantineShareExceeded

        if not prefect_ready(spawned):
            return 1
        install(extra=(QuarantineShareExceeded, SlotWaitTimeout))  # main() says these in one line
        try:
            result = pipeline(
                config_path=str(args.config) if args.config else None, stages=stages, lake=str(cfg.lake_root)
            )
        except (QuarantineShareExceeded, SlotWaitTimeout) as exc:  # committed work is kept; the run failed
            print(str(exc), file=sys.stderr)
            return 1
    finally:
        if server is not None:
            server.stop()
    _print_summary(result, cfg.lake_root)
    return 0


def _print_summary(result: dict, lake: Path) -> None:
    print()
    print(result.get("status", ""))
    print(f"\nlake: {lake}  (catalog: {lake / 'catalog.duckdb'})")
    print("try next:")
    for q in (
        "select modality, count(*) from documents group by all",
        "select stage, rule, count(*) n, round(avg(value), 3) avg_value from rejects group by all order by n desc",
        "select modality, sum(n_tokens) tokens, count(*) samples from shards group by all",
    ):
        print(f'  distillery sql "{q}"')


def cmd_sql(args: argparse.Namespace) -> int:
    from distillery.lake import Lake
    from distillery.sql import WriteRefused, query, render

    try:
        columns, rows = query(Lake(_lake_from(args)), args.query)
    except WriteRefused as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except Exception as exc:  # a bad query is the user's to fix: say what DuckDB said
        print(f"query failed: {exc}", file=sys.stderr)
        return 1
    print(render(columns, rows, args.format))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from distillery.accounting import check
    from distillery.lake import Lake

    lake = Lake(_lake_from(args))
    if not lake.catalog_path.exists():
        print(f"no lake at {lake.root}: run `distillery run` first", file=sys.stderr)
        return 1
    status = check(lake)
    print(status.render())
    return 0 if status.ok else 1


def cmd_teacher(args: argparse.Namespace) -> int:
    from teacher.server import main as serve_main

    return serve_main(["--host", args.host, "--port", str(args.port)])


def cmd_train(args: argparse.Namespace) -> int:
    with interrupts_end_the_run(), own_prefect_server() as spawned:
        from distillery.config import load_config
        from flows.train import train_flow

        cfg = load_config(args.config, {"lake": str(Path(args.lake).resolve())} if args.lake else None)
        if not prefect_ready(spawned):
            return 1
        report = train_flow(cfg, resume=args.resume)
    print({k: v for k, v in report.items() if not isinstance(v, (dict, list))})
    return 0


def _current_build(args: argparse.Namespace) -> Path | None:
    """The shard folder a `shards`/`explain` command works on: --dir, else the lake's current
    build (lake/shard/CURRENT); None after saying on stderr that there is none."""
    if getattr(args, "dir", None):
        return Path(args.dir).resolve()
    from distillery.lake import Lake
    from distillery.shard_current import current_build, pointer_path

    lake = Lake(_lake_from(args))
    build = current_build(lake)
    if build is None:
        print(
            f"no current shard build in {lake.root.resolve()} ({pointer_path(lake).resolve()} names none): "
            "run `distillery run` first, or pass --lake",
            file=sys.stderr,
        )
    return build


def cmd_shards(args: argparse.Namespace) -> int:
    from shards.show import SampleNotFound

    build = _current_build(args)
    if build is None:
        return 1
    if args.action == "path":
        print(build)
        return 0
    if args.action == "verify":
        from shards.verify import verify

        problems = verify(build)
        for p in problems:
            print(p)
        print(f"{build}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        return 0 if not problems else 1
    from shards.show import show

    try:
        print(show(build, args.id, Path(args.out)))
    except SampleNotFound as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from distillery.explain import NotInShards, explain
    from distillery.lake import Lake

    build = _current_build(args)
    if build is None:
        return 1
    try:
        print("\n".join(explain(Lake(_lake_from(args)), build, args.id)))
    except NotInShards as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from distillery.app.ui import serve

    return serve(port=args.port, host=args.host)


LAKE_HELP = "lake folder (default: $DISTILLERY_LAKE, else ./lake)"


def _lake_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="a pipeline config YAML: use its lake")
    parser.add_argument("--lake", help="lake folder (overrides --config; default: $DISTILLERY_LAKE, else ./lake)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="distillery", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the pipeline for a config (the demo config by default)")
    r.add_argument(
        "config", nargs="?", type=Path, help="pipeline config YAML (default: the demo, on a generated sample corpus)"
    )
    r.add_argument("--stages", help=f"comma-separated subset: {','.join(STAGES)}")
    r.add_argument("--lake", help="lake folder (overrides the config)")
    r.add_argument("--serve-teacher", action="store_true", help="start the reference teacher at distill.base_url")
    r.set_defaults(func=cmd_run)

    q = sub.add_parser("sql", help="read-only SQL over the lake")
    q.add_argument("query", help="a read-only SQL query over the views (documents, curated, rejects, shards, ...)")
    q.add_argument(
        "--format",
        choices=["table", "csv", "json"],
        default="table",
        help="table (aligned, for people), csv (header line, then rows, \\n line ends) or json (one object a line)",
    )
    q.add_argument("--lake", help=LAKE_HELP)
    q.set_defaults(func=cmd_sql)

    s = sub.add_parser("status", help="rows per stage and whether the accounting adds up (exit 1 if not)")
    s.add_argument("--lake", help=LAKE_HELP)
    s.set_defaults(func=cmd_status)

    t = sub.add_parser("teacher", help="the reference teacher")
    tsub = t.add_subparsers(dest="action", required=True)
    ts = tsub.add_parser("serve", help="serve the reference OpenAI-compatible teacher")
    ts.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    ts.add_argument("--port", type=int, default=8765, help="port to listen on (the demo's distill.base_url uses 8765)")
    ts.set_defaults(func=cmd_teacher)

    tr = sub.add_parser("train", help="train on the current shards")
    tr.add_argument("config", nargs="?", type=Path, help="pipeline config YAML (default: the demo config)")
    tr.add_argument("--lake", help="lake folder (overrides the config)")
    tr.add_argument(
        "--resume", action="store_true", help="continue the interrupted training run from its last checkpoint"
    )
    tr.set_defaults(func=cmd_train)

    sh = sub.add_parser("shards", help="check or look at the shards")
    shsub = sh.add_subparsers(dest="action", required=True)
    for action, what in (
        ("verify", "check every shard of the current build against its manifest (exit 1 on a problem)"),
        ("show", "render one sample: text decoded, images as PNG, spans labelled"),
        ("path", "print the current build's folder (absolute)"),
    ):
        a = shsub.add_parser(action, help=what)
        if action == "show":
            a.add_argument("id", help="the sample's id (the shards view's id column)")
            a.add_argument("--out", default="shard-show", help="folder for the sample's images (default: ./shard-show)")
        _lake_options(a)
        a.add_argument("--dir", help="a shard folder (default: the lake's current build, lake/shard/CURRENT)")
        a.set_defaults(func=cmd_shards)

    e = sub.add_parser("explain", help="a shard row's lineage: shard, trace, curated row, document, source file")
    e.add_argument("id", help="the shard row's id (the shards view's id column)")
    _lake_options(e)
    e.set_defaults(func=cmd_explain, dir=None)

    u = sub.add_parser("ui", help="start a local Prefect server with its UI")
    u.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    u.add_argument("--port", type=int, default=4200, help="port of the Prefect UI and API")
    u.set_defaults(func=cmd_ui)
    return p


def main(argv: list[str] | None = None) -> int:
    configure()
    args = build_parser().parse_args(argv)
    from distillery.app.local_server import ServerStartError
    from distillery.config import ConfigError
    from distillery.lake import LakeError, storage_error_message

    try:
        return int(args.func(args) or 0)
    except (ConfigError, LakeError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except ServerStartError as exc:  # the run's own Prefect server did not bind its port
        print(str(exc), file=sys.stderr)
        return 1
    except OSError as exc:  # a full or read-only disk anywhere (a temp file, a cache): say so plainly
        message = storage_error_message(exc)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
