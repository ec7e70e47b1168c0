# Compatibility re-export for distillery/app/cli.py: the reference teacher lives in teacher.reference.server.
from teacher.reference.server import main, start_server  # noqa: F401
