"""Database layer: SQLAlchemy models, engine and sessions, query functions, Alembic migrations.

Never imports streamlit or torch.
"""
