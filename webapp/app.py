"""The app factory: settings, then database, then Flask (auth), then Dash (pages)."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import dash
import dash_bootstrap_components as dbc
from dash import Dash, dcc, html
from flask import Flask
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from sqlalchemy import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from config import Settings, get_settings
from db.exporter import Exporter
from db.session import make_engine, session_factory
from db.snapshot_cache import SnapshotCache
from webapp import auth, downloads, filters, roles, security, unsubscribe, uploads
from webapp.components import small_button
from webapp.nav import nav_id
from webapp.state import AppState

HERE = Path(__file__).parent
log = logging.getLogger("custseg.app")
TITLE = "Customer segmentation"
# Dash's page, in English, with a "skip to content" link first in the tab order (it moves the
# focus to the page's <main>: webapp/assets/a11y.js). docs/ACCESSIBILITY.md.
INDEX = """<!DOCTYPE html>
<html lang="en">
    <head>
        {%metas%}
        <title>{%title%}</title>
        {%favicon%}
        {%css%}
    </head>
    <body>
        <a class="skip-link visually-hidden-focusable" href="#main">Skip to content</a>
        {%app_entry%}
        <footer>
            {%config%}
            {%scripts%}
            {%renderer%}
        </footer>
    </body>
</html>"""


def _navbar() -> dbc.Navbar:
    user = current_user if current_user and current_user.is_authenticated else None
    # One link per page the user may open; a callback keeps their query and active state.
    links = [
        dbc.NavItem(
            dbc.NavLink(
                page["name"],
                href=page["path"],
                active=False,
                id=nav_id(page["path"]),
                className="text-nowrap px-2",
            )
        )
        for page in (roles.visible_pages() if user is not None else [])
    ]
    right = []
    if user is not None:
        right = [
            html.Span(
                [html.Span(f"{user.email} · ", className="d-none d-xxl-inline"), user.role],
                className="navbar-text me-2 small text-nowrap",
                title=user.email,
            ),
            # A POST with a CSRF token: a link or image on another site cannot log users out.
            html.Form(
                [
                    dcc.Input(type="hidden", name="csrf_token", value=generate_csrf()),
                    small_button(
                        "Log out", "logout", color="light", type="submit", className="text-nowrap"
                    ),
                ],
                method="POST",
                action="/logout",
                className="d-inline",
            ),
        ]
    return dbc.Navbar(
        dbc.Container(
            [
                dbc.NavbarBrand(TITLE, href="/", className="fs-6 fw-semibold"),
                # The links wrap rather than push the rest out of the bar on narrow screens.
                dbc.Nav(links, navbar=True, className="me-auto flex-wrap"),
                html.Div(right, className="d-flex align-items-center"),
            ],
            fluid=True,
        ),
        color="dark",
        dark=True,
        className="mb-3",
    )


def _layout() -> html.Div:
    return html.Div(
        [
            dcc.Location(id="url", refresh="callback-nav"),
            # Written by the filter controls: the query follows the view without a reload.
            dcc.Location(id="url-query", refresh=False),
            _navbar(),
            # The skip link's target (a11y.js focuses it for that moment only: a focusable
            # <main> would take the focus of every click in the page).
            html.Main(dbc.Container(dash.page_container, fluid=True, className="pb-5"), id="main"),
        ]
    )


def _name_titles() -> None:
    """Every page's browser title names the page, then the app ("Segments · Customer
    segmentation"), whatever its module gave."""
    for page in dash.page_registry.values():
        page["title"] = f"{page['name']} · {TITLE}"


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> Dash:
    """Build the Dash app on its own Flask server. `settings` and `engine` are for tests."""
    settings = settings or get_settings()
    secret = settings.resolved_secret_key()
    engine = engine or make_engine(settings.database_url)

    server = Flask(
        __name__,
        static_folder=str(HERE / "static"),
        template_folder=str(HERE / "templates"),
    )
    server.config.update(
        SECRET_KEY=secret,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        SESSION_COOKIE_NAME="custseg_session",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
        REMEMBER_COOKIE_DURATION=timedelta(hours=settings.session_hours),
        # Every body is small; the upload route allows CUSTSEG_MAX_UPLOAD_MB (webapp/uploads.py).
        MAX_CONTENT_LENGTH=security.MAX_REQUEST_BYTES,
        WTF_CSRF_TIME_LIMIT=3600,
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_url,
        RATELIMIT_KEY_PREFIX=settings.ratelimit_key_prefix,
        DEBUG=settings.debug,
        TESTING=settings.env == "test",
    )
    if settings.is_production and not settings.secure_cookies:
        log.warning(
            "CUSTSEG_COOKIE_SECURE=false in production: the session cookie goes over plain HTTP"
        )
    if settings.trusted_proxies:
        server.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            server.wsgi_app,
            x_for=settings.trusted_proxies,
            x_proto=settings.trusted_proxies,
            x_host=settings.trusted_proxies,
        )
    cache = SnapshotCache(directory=settings.snapshot_cache_dir)  # shared by the machine
    server.extensions["custseg"] = AppState(
        settings,
        engine,
        session_factory(engine),
        cache,
        Exporter.of(engine, cache, settings),
    )
    auth.init_app(server)
    uploads.init_app(server)
    unsubscribe.init_app(server)  # the public link of notification e-mails

    app = Dash(
        __name__,
        server=server,  # type: ignore[arg-type]  # Dash takes a Flask app here (its docs)
        use_pages=True,
        pages_folder=str(HERE / "pages"),
        external_stylesheets=["/static/bootstrap.min.css"],
        suppress_callback_exceptions=True,
        title=TITLE,
        update_title=None,  # type: ignore[arg-type]  # None: keep the title while loading
        serve_locally=True,
        index_string=INDEX,
    )
    app.layout = _layout
    _name_titles()
    filters.register(app)
    downloads.register(app)
    security.init_app(app)
    return app
