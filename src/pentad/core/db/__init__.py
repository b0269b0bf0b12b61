"""SQL storage: declarative base, engine and sessions, request transactions, migrations."""
