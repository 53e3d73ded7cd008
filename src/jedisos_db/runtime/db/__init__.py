"""The jedisos schema's database plumbing: models, the asyncpg engine, the Alembic runner.
"""
