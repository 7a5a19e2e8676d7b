"""Alembic environment: moonbase runs migrations itself, on a connection it passes in."""

from alembic import context

from moonbase.store.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "moonbase migrations run at start (moonbase serve), not from the alembic CLI"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
