"""Declarative base with a naming convention, so constraints have stable names in migrations."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import BigInteger, Enum, ForeignKey, Integer, MetaData
from sqlalchemy.orm import DeclarativeBase, MappedColumn, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a real BIGINT.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def text_enum(enum: type[StrEnum], length: int) -> Enum:
    """A column of `enum`'s values stored as VARCHAR(length) (no database enum type, no CHECK):
    read back as members, and a value outside the enum is refused before it is written."""
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
    )


def parent_key(target: str) -> MappedColumn[int]:
    """A child table's key column referring to its parent row `target` ("table.id"): part of
    the child's primary key, its rows deleted with the parent (ON DELETE CASCADE)."""
    return mapped_column(ForeignKey(target, ondelete="CASCADE"), primary_key=True)
