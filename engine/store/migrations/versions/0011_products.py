"""The product catalogue (`nudge import products`): what templates and recommendations read.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("category", sa.String(255)),
        sa.Column("price", sa.Float),
        sa.Column("currency", sa.String(3)),
        sa.Column("url", sa.Text),
        sa.Column("image_url", sa.Text),
        sa.Column("in_stock", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("attributes", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_products_category", "products", ["category", "in_stock"])


def downgrade() -> None:
    op.drop_index("ix_products_category", "products")
    op.drop_table("products")
