"""Storage: the home layout and lock, the DuckDB warehouse, fingerprints, SQL files."""
