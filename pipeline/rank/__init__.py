"""Ranking: score every organisation and account of a day and keep the ranked list."""

from pipeline.store.sql import SqlFolder

sql = SqlFolder(__file__)
