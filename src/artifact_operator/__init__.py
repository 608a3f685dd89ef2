"""artifact-operator: runs `Artifact` custom resources as Kubernetes workloads."""

__version__ = "0.1.0"
