"""reviews (human-in-the-loop queue) and Image Intelligence detect requests

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("object_index", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=100), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("box", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reviewer", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.create_index("uq_reviews_job_object", ["job_id", "object_index"], unique=True)
        batch_op.create_index("ix_reviews_tenant_status", ["tenant_id", "status", "id"])
        batch_op.create_index("ix_reviews_ref", ["ref", "status"])

    op.create_table(
        "ii_detect_requests",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=True),
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("custom_id", sa.String(length=64), nullable=True),
        sa.Column("feed_id", sa.String(length=64), nullable=True),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("images", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ii_detect_requests", schema=None) as batch_op:
        batch_op.create_index("ix_ii_detect_tenant_created", ["tenant_id", "created_at"])
        batch_op.create_index("ix_ii_detect_tenant_feed", ["tenant_id", "feed_id", "created_at"])
        batch_op.create_index(
            "ix_ii_detect_tenant_custom", ["tenant_id", "custom_id", "created_at"]
        )
        batch_op.create_index("ix_ii_detect_batch", ["batch_id"])


def downgrade() -> None:
    with op.batch_alter_table("ii_detect_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_ii_detect_batch")
        batch_op.drop_index("ix_ii_detect_tenant_custom")
        batch_op.drop_index("ix_ii_detect_tenant_feed")
        batch_op.drop_index("ix_ii_detect_tenant_created")
    op.drop_table("ii_detect_requests")
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_reviews_ref")
        batch_op.drop_index("ix_reviews_tenant_status")
        batch_op.drop_index("uq_reviews_job_object")
    op.drop_table("reviews")
