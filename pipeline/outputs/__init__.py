"""What analysts and referrals read: the report, evidence packs, the guide, summaries."""

from pipeline.store.sql import SqlFolder

sql = SqlFolder(__file__)
