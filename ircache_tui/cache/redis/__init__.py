"""The Redis tier: the one door to Redis (door.py), how it is reached (nodes.py, cluster.py),
and what is done there (the tier, its walks, lock, hit counters and notifications)."""

from .clients import make_client, make_cluster_client, node_url
from .diagnose import down_reason
from .tier import RedisTier

__all__ = ["RedisTier", "down_reason", "make_client", "make_cluster_client", "node_url"]
