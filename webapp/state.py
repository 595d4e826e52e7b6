"""Per-app state reachable from requests and callbacks: settings and the database engine."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config import Settings


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]


def state() -> AppState:
    """The state of the app serving the current request."""
    return current_app.extensions["custseg"]  # type: ignore[no-any-return]
