"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
"""

from cairn.db.migrate import migrate_model, revert_model

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}

# For an ICAT release: the version this revision brings the model to (see migrate.py).
# icat_version = "x.y"


def upgrade() -> None:
    ${upgrades if upgrades else 'migrate_model("old", "new")'}


def downgrade() -> None:
    ${downgrades if downgrades else 'revert_model("old", "new")'}
