"""ICAT 6.2: SUBJECT, Instrument.startDate/endDate, DataPublication.internalId,
FundingReference.acknowledgement, Datafile/Dataset.location 255 -> 511.

Revision ID: icat_6_2
Revises: icat_6_1
"""

from cairn.db.migrate import migrate_model, revert_model

revision = "icat_6_2"
down_revision = "icat_6_1"
branch_labels = None
depends_on = None

icat_version = "6.2"


def upgrade() -> None:
    migrate_model("6.1", "6.2")


def downgrade() -> None:
    revert_model("6.1", "6.2")
