"""Triage: analysts' verdicts and how they change the ranked list."""
