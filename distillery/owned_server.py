"""Which Prefect server is the run's own.

The CLI (distillery/app/local_server.py) sets OWNED_URL_ENV to the API URL of the Prefect
server it started for the run; flows/limits.py compares Prefect's API URL with it to tell
that private server from one other processes share. Here, in the core, so that the core
reads the contract without importing the application package.
"""

OWNED_URL_ENV = "DISTILLERY_OWNED_PREFECT_API_URL"
