"""The kopf operator: thin handlers over the shared pipeline. Importing registers them."""

from . import jobs, kueue, links, nodes, startup

__all__ = ["jobs", "kueue", "links", "nodes", "startup"]
