"""Data layer: SQLAlchemy models, engine/session helpers, migrations and the importer."""
