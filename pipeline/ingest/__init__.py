"""Ingest: delivery files to a pseudonymised, reconciled Parquet lake."""
