"""``python -m pipeline.profile --write-docs``: regenerate ``docs/features.md``."""

from pipeline.profile.docs import main

main()
