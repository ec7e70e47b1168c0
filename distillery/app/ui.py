"""`distillery ui`: a local Prefect server with its UI, its database inside the run folder.

The UI is a web app that calls the API from the browser, so the API URL it is given must be
the one the browser can reach: we set PREFECT_UI_API_URL to this host and port. Analytics
are off. Flows started from another shell report to this server when PREFECT_API_URL
(printed below) is set there.
"""

from __future__ import annotations

import os
import subprocess
import sys

from distillery.app.prefect_env import configure


def server_env(host: str, port: int) -> dict[str, str]:
    run = configure()
    env = dict(os.environ)
    env.update(
        {
            "PREFECT_HOME": str(run / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "true",
            "PREFECT_SERVER_API_HOST": host,
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_UI_API_URL": f"http://{host}:{port}/api",
            "PREFECT_API_URL": f"http://{host}:{port}/api",
        }
    )
    return env


def serve(host: str = "127.0.0.1", port: int = 4200) -> int:
    """Run the Prefect server in the foreground until interrupted."""
    env = server_env(host, port)
    print(f"Prefect UI:  http://{host}:{port}")
    print(f"API:         {env['PREFECT_API_URL']}   (database in {env['PREFECT_HOME']})")
    print(f"In another shell: export PREFECT_API_URL={env['PREFECT_API_URL']}")
    prefect = os.path.join(os.path.dirname(sys.executable), "prefect")
    cmd = [prefect, "server", "start", "--host", host, "--port", str(port), "--analytics-off"]
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0
