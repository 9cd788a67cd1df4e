"""The config stage: `[tool.polybuild]` / polybuild.toml read, validated and composed from includes."""
