"""The download manager: carts, downloads and their items, transports, configuration values.

Revision ID: cairn_0006
Revises: cairn_0005
"""

from alembic import op
from sqlalchemy import inspect

from cairn.db.tables import TABLES

revision = "cairn_0006"
down_revision = "cairn_0005"
branch_labels = None
depends_on = None

D = TABLES.downloads
NEW = (D.cart, D.cart_item, D.download, D.download_item, D.download_type, D.conf_var)


def upgrade() -> None:
    bind = op.get_bind()
    # Absent-only, as cairn_0002: a database made by create_all() already has them.
    existing = {name.upper() for name in inspect(bind).get_table_names()}
    for table in NEW:
        if table.name.upper() not in existing:
            table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(NEW):
        table.drop(bind)
