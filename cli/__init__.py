"""The ``accesswatch`` command line: thin wiring of ``pipeline/``, ``evaluation/`` and ``flows/``.

``cli/app.py`` is the Typer app and registers every command; ``cli/options.py`` holds what
the commands share (options, settings, errors, consoles); one module per command group.
"""
