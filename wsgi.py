"""WSGI entry point for production: `gunicorn wsgi:server`."""

from webapp.app import create_app

app = create_app()
server = app.server
