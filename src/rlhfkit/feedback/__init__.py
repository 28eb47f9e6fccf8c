"""Human feedback: the store, the annotation web app, agreement, aggregation and export.

    rlhfkit campaign --data samples.jsonl --campaign demo --annotators annotator-1,annotator-2,annotator-3
    rlhfkit serve --db feedback.db               # annotators judge pairs in the browser
    rlhfkit annotate --campaign demo --annotators 3   # or simulated annotators fill it
    rlhfkit export --campaign demo --out prefs.jsonl  # TRL preference columns

Modules, each with one job: `store` (SQLAlchemy tables, SQLite/PostgreSQL, Alembic migrations),
`campaigns` (tasks from a responses file), `service` (assignment and idempotent submission: the
one layer both the web app and the simulated annotators call), `agreement` and `aggregate` (pure
functions), `export`, `sessions` (tokens and server-side browser sessions), `app` (FastAPI),
`simulate`, `commands` (the CLI configs).

Nothing here imports torch: the package must be usable on a machine that only serves the web app.
"""
