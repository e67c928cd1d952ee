"""collections: collections, their images and signals, duplicate pairs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("metadata_schema", sa.JSON(), nullable=True),
        sa.Column("embedder", sa.String(length=64), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.create_index("uq_collections_tenant_name", ["tenant_id", "name"], unique=True)

    op.create_table(
        "collection_images",
        sa.Column("key", _KEY, autoincrement=True, nullable=False),
        sa.Column("collection_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("image_id", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("pixel_sha256", sa.String(length=64), nullable=False),
        sa.Column("phash", sa.String(length=16), nullable=False),
        sa.Column("dhash", sa.String(length=16), nullable=False),
        sa.Column("colorhash", sa.String(length=16), nullable=False),
        sa.Column("descriptor", sa.LargeBinary(), nullable=False),
        sa.Column("local_features", sa.LargeBinary(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["collection_id"], ["collections.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("key"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("collection_images", schema=None) as batch_op:
        batch_op.create_index("uq_collection_images_id", ["collection_id", "id"], unique=True)
        batch_op.create_index("ix_collection_images_order", ["collection_id", "key"], unique=False)
        batch_op.create_index(
            "ix_collection_images_sha256", ["collection_id", "sha256"], unique=False
        )
        batch_op.create_index(
            "ix_collection_images_pixels", ["collection_id", "pixel_sha256"], unique=False
        )

    op.create_table(
        "collection_duplicates",
        sa.Column("key_a", _KEY, nullable=False),
        sa.Column("key_b", _KEY, nullable=False),
        sa.Column("collection_id", sa.String(length=40), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("match", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["key_a"], ["collection_images.key"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["key_b"], ["collection_images.key"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("key_a", "key_b"),
    )
    with op.batch_alter_table("collection_duplicates", schema=None) as batch_op:
        batch_op.create_index(
            "ix_collection_duplicates_collection", ["collection_id", "key_a"], unique=False
        )
        batch_op.create_index("ix_collection_duplicates_b", ["key_b"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("collection_duplicates", schema=None) as batch_op:
        batch_op.drop_index("ix_collection_duplicates_b")
        batch_op.drop_index("ix_collection_duplicates_collection")
    op.drop_table("collection_duplicates")
    with op.batch_alter_table("collection_images", schema=None) as batch_op:
        batch_op.drop_index("ix_collection_images_pixels")
        batch_op.drop_index("ix_collection_images_sha256")
        batch_op.drop_index("ix_collection_images_order")
        batch_op.drop_index("uq_collection_images_id")
    op.drop_table("collection_images")
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_index("uq_collections_tenant_name")
    op.drop_table("collections")
