"""Per-app state reachable from requests and callbacks: settings, database, snapshot cache."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from db.exporter import Exporter
from db.snapshot_cache import SnapshotCache


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    cache: SnapshotCache  # snapshot frames: large ones mapped from the machine's files
    exporter: Exporter  # every export of every surface goes through it


def state() -> AppState:
    """The state of the app serving the current request."""
    return current_app.extensions["custseg"]  # type: ignore[no-any-return]
