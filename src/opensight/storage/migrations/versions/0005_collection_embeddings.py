"""collection_images.embedding: the neural embedder's vector (neural collections only)

A neural collection keeps the classical descriptor (near-duplicate candidates and
decisions stay embedder-independent) and, in this column, the vector of its
neural embedder (float16), from which its second index is rebuilt.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("collection_images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("embedding", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("collection_images", schema=None) as batch_op:
        batch_op.drop_column("embedding")
