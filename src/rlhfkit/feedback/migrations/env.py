"""Alembic environment for the feedback store; run by `Store.upgrade()` (see ../store.py).

To add a revision after changing a table in store.py:
    cd src/rlhfkit/feedback && alembic -c /dev/null -x db=feedback.db revision -m "what changed"
and write its upgrade()/downgrade() by hand (batch_alter_table for SQLite). The connection is
passed in by `Store.upgrade()`; offline SQL generation is left out.
"""

from alembic import context

from rlhfkit.feedback.store import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
