"""Shared building blocks that know nothing of the pipeline: errors, files, processes, TOML, schema,
platforms, toolchains."""
