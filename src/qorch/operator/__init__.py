"""The kopf operator: thin handlers over the shared pipeline. Importing registers them."""

from . import jobs, links, nodes, startup

__all__ = ["jobs", "links", "nodes", "startup"]
