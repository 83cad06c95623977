"""ICAT 6.1: every table of the 6.1 model (and SESSION_), derived from the declaration.

Revision ID: icat_6_1
Revises: (none)
"""

from cairn.db.migrate import MigrationError, migrate_model

revision = "icat_6_1"
down_revision = None
branch_labels = None
depends_on = None

icat_version = "6.1"


def upgrade() -> None:
    migrate_model(None, "6.1")


def downgrade() -> None:
    # This database may be a stamped icat.server catalogue: never drop it by a migration.
    raise MigrationError("refusing to drop the catalogue; drop the database instead")
