"""WSGI entry point for production: `gunicorn wsgi:server`."""

from webapp import warmup
from webapp.app import create_app

app = create_app()
server = app.server
_state = server.extensions["custseg"]
if _state.settings.warm_caches:  # in each worker: gunicorn imports this module after forking
    warmup.start(_state.exporter, _state.settings.warm_interval_s)
