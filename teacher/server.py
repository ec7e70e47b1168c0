# Compatibility re-export for distillery/cli.py: the reference teacher lives in teacher.reference.server.
from teacher.reference.server import main, start_server  # noqa: F401
