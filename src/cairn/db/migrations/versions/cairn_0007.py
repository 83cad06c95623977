"""Dataset and Investigation fileSize/fileCount kept exact by triggers (cairn.db.sizes).

As icat.server's optional ``create_triggers_*.sql``: the triggers are created and the sums
of the rows already there computed once. A database where icat.server's triggers keep the
sums already gets none of Cairn's (they would count every file twice) and no recount.

Revision ID: cairn_0007
Revises: cairn_0006
"""

from alembic import op

from cairn.db import sizes

revision = "cairn_0007"
down_revision = "cairn_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if sizes.install(bind):
        sizes.recompute(bind)


def downgrade() -> None:
    sizes.uninstall(op.get_bind())
