"""Publishing: CAIRN_DOI, the DOIs Cairn mints and where each stands at DataCite.

Revision ID: cairn_0005
Revises: cairn_0004
"""

from cairn.db import migrate
from cairn.db.tables import TABLES

revision = "cairn_0005"
down_revision = "cairn_0004"
branch_labels = None
depends_on = None

DOI = TABLES.doi


def upgrade() -> None:
    migrate.create_service_tables(DOI)


def downgrade() -> None:
    migrate.drop_service_tables(DOI)
