"""Synthetic worlds for accesswatch: an organisation register, NPD agreements, months of LRS
and NPD query events with known misuse scenarios and legitimate look-alikes, delivered as a
landing folder in the data contract (the README's "Data contract") plus ground truth
under ``truth/``.

Entry point: :func:`generate_world`. Parameters: :class:`schemas.generate.WorldConfig`.
"""

from evaluation.generate.generator import (
    ProgressCallback,
    build,
    generate_world,
    pipeline_org_id,
    real_feed_config,
)

__all__ = ["ProgressCallback", "build", "generate_world", "pipeline_org_id", "real_feed_config"]
