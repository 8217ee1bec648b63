"""Evaluation: the synthetic-world generator, the labelled-world judge and its baselines."""

from pipeline.store.sql import SqlFolder

sql = SqlFolder(__file__)
