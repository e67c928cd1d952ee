"""seen_signatures: when each VSHMAC signature was first seen, shared by API processes

Keyed by a SHA-256 of key and signature (never the signature itself); rows expire
after the Date window and are deleted.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "seen_signatures",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    with op.batch_alter_table("seen_signatures", schema=None) as batch_op:
        batch_op.create_index("ix_seen_signatures_expires", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("seen_signatures", schema=None) as batch_op:
        batch_op.drop_index("ix_seen_signatures_expires")
    op.drop_table("seen_signatures")
