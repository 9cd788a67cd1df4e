"""Container images: Jinja-composed Dockerfiles built by an engine, and images assembled from artifacts by the Go
helper. Both end as an OCI layout in the dist directory, which `polybuild container push` sends to a registry."""
