"""qorch: a Kubernetes operator for distributed quantum computing."""
