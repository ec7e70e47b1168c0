"""The run's own Prefect server: what `distillery run` talks to when no PREFECT_API_URL is set.

Without an API URL Prefect would start a "temporary server" of its own (a `uvicorn` child
process, prefect/server/api/server.py SubprocessASGIServer). That child is not tied to our
life: a SIGKILLed `distillery` leaves it running with PPID 1, and Ctrl-C at a terminal sends
SIGINT to it too, so it dies before our flow can report and every report becomes a
ConnectError traceback. So the CLI starts the same server itself, differently:

- **It cannot outlive the CLI.** The child asks the kernel for SIGKILL when its parent dies
  (prctl PR_SET_PDEATHSIG), checks right after that the parent is still the one that
  started it (the parent may have died in between), and only then loads Prefect. This
  holds for every way the CLI can end, SIGKILL of its PID alone included; no pid file,
  no clean-up pass, nothing to go stale.
- **It is out of the terminal's way.** It runs in its own session, so Ctrl-C reaches only
  the CLI, which reports, drains Prefect's log and event queues, then stops the server.
- **No port race.** The child binds 127.0.0.1:0 itself and tells the parent the port on a
  pipe; two runs started at once each get their own port (they share Prefect's SQLite
  database in the run folder, as two temporary servers always did).
- **Fast start when nothing changed.** Prefect runs `alembic upgrade head` on every start,
  which parses every migration script (seconds on a small machine) even when the database
  is current. After a successful start the child records Prefect's version and the
  database's revision beside the database; a later start that finds both unchanged skips
  the migrations (PREFECT_API_DATABASE_MIGRATE_ON_START=false). Anything else (a new Prefect,
  a new or foreign database, a missing stamp) migrates as before.

Why not one long-lived server per project folder, reused by every run? It would save the
remaining start-up, but it must outlive the run that started it, which is exactly what a
killed run must not leave behind, and it needs a pid/port file that can go stale,
health checks, an idle timer and a start race between two runs. Per-run and tied to the
parent's life has none of those failure modes.

Like Prefect's temporary server, it runs only the services an ephemeral server runs (no
scheduler, no lease repossessor) and no UI; `distillery ui` is the long-lived server.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# Marks a process whose PREFECT_API_URL is a server this CLI owns (flows/limits.py reads it).
from distillery.owned_server import OWNED_URL_ENV  # noqa: F401 (re-exported: the CLI sets it)

PR_SET_PDEATHSIG = 1


class ServerStartError(RuntimeError):
    """The run's Prefect server did not come up; the message says why and where its log is."""


class LocalServer:
    """A running Prefect server owned by this process (see the module docstring)."""

    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.api_url = f"http://127.0.0.1:{port}/api"

    def wait_healthy(self, timeout_s: float, announce_after_s: float = 2.0) -> None:
        """Block until /api/health answers, at most `timeout_s`; say on stderr what it waits for
        once the wait is longer than `announce_after_s` (a first start migrates the database)."""
        start = time.monotonic()
        announced = False
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
        while True:
            if self.proc.poll() is not None:
                raise ServerStartError(
                    f"the run's Prefect server exited with code {self.proc.returncode} "
                    f"while starting; its log: {self.log}"
                )
            try:
                with direct.open(self.api_url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            waited = time.monotonic() - start
            if waited > timeout_s:
                self.stop()
                raise ServerStartError(
                    f"the run's Prefect server did not answer within {timeout_s:.0f} s "
                    f"(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS); its log: {self.log}"
                )
            if not announced and waited > announce_after_s:
                print(
                    f"waiting for the run's Prefect server to start (database {self.log.parent}; "
                    f"up to {timeout_s:.0f} s)...",
                    file=sys.stderr,
                    flush=True,
                )
                announced = True
            time.sleep(0.1)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after `timeout_s`); safe to call twice."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(prefect_home: Path, timeout_s: float = 30.0) -> LocalServer:
    """Start the server process and return once it has bound its port (not yet healthy:
    the caller imports its own modules meanwhile and then calls `wait_healthy`)."""
    prefect_home.mkdir(parents=True, exist_ok=True)
    log = prefect_home / "server.log"
    env = dict(os.environ, PREFECT_UI_ENABLED="0", PREFECT__SERVER_EPHEMERAL="1", PREFECT__SERVER_FINAL="1")
    env.pop("PREFECT_API_URL", None)
    # Started from the calling thread, which the kernel takes as the parent whose death kills
    # the server: the CLI calls this from its main thread, which lives as long as the process.
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "distillery.app.local_server", str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            start_new_session=True,
        )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    line = proc.stdout.readline().decode().strip() if ready else ""
    proc.stdout.close()
    if not line.isdigit():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise ServerStartError(f"the run's Prefect server did not bind a port within {timeout_s:.0f} s; its log: {log}")
    return LocalServer(proc, int(line), log)


# ---- the child side --------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(0)


def _stamp_path(db: Path) -> Path:
    return db.with_name(db.name + ".migrated")


def _db_revision(db: Path) -> str | None:
    """The alembic revision recorded in Prefect's SQLite database, or None (no database yet)."""
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as con:
            row = con.execute("select version_num from alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def _sqlite_db() -> Path | None:
    """Prefect's database file when it is the default SQLite one, else None (never skip migrations)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().server.database.connection_url
    url = url.get_secret_value() if url is not None and hasattr(url, "get_secret_value") else url
    if not url or not str(url).startswith("sqlite+aiosqlite:///"):
        return None
    return Path(str(url).removeprefix("sqlite+aiosqlite:///"))


def _child(parent: int) -> None:
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # our parent decides when we stop
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    os.write(1, f"{sock.getsockname()[1]}\n".encode())
    os.close(1)
    os.open(os.devnull, os.O_WRONLY)  # fd 1 again, for anything that prints

    import prefect

    db = _sqlite_db()
    start_lock = None
    if db:
        # Two runs starting at once on one database: one migrates, the other waits for it
        # here and then finds the stamp (the lock is the kernel's: a dead holder frees it).
        db.parent.mkdir(parents=True, exist_ok=True)
        start_lock = open(db.with_name(db.name + ".start-lock"), "w")
        fcntl.flock(start_lock, fcntl.LOCK_EX)
        stamp = f"{prefect.__version__} {_db_revision(db)}"
        if _stamp_path(db).exists() and _stamp_path(db).read_text() == stamp and not stamp.endswith("None"):
            os.environ["PREFECT_API_DATABASE_MIGRATE_ON_START"] = "false"

    import uvicorn

    config = uvicorn.Config("prefect.server.api.server:create_app", factory=True, log_level="error", lifespan="on")
    server = uvicorn.Server(config)
    if db and start_lock:
        _stamp_after_start(server, db, start_lock)
    server.run(sockets=[sock])


def _stamp_after_start(server, db: Path, start_lock) -> None:
    """Once the server has started (migrations done), record (Prefect version, database
    revision) and let the next server start."""
    import threading

    def stamp() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.1)
        revision = _db_revision(db)
        if server.started and revision:
            import prefect

            tmp = _stamp_path(db).with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(f"{prefect.__version__} {revision}")
            os.replace(tmp, _stamp_path(db))
        start_lock.close()

    threading.Thread(target=stamp, daemon=True, name="migration-stamp").start()


if __name__ == "__main__":
    _child(int(sys.argv[1]))
