"""The download manager: carts, downloads and their items, transports, configuration values.

Revision ID: cairn_0006
Revises: cairn_0005
"""

from cairn.db import migrate
from cairn.db.tables import TABLES

revision = "cairn_0006"
down_revision = "cairn_0005"
branch_labels = None
depends_on = None

D = TABLES.downloads
NEW = (D.cart, D.cart_item, D.download, D.download_item, D.download_type, D.conf_var)


def upgrade() -> None:
    migrate.create_service_tables(*NEW)


def downgrade() -> None:
    migrate.drop_service_tables(*NEW)
