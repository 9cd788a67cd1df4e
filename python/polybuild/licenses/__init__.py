"""Licenses across Rust, Python and Go: an offline inventory of what ships, each package's license resolved from
its own evidence, a deny.toml policy over all three ecosystems, attribution files and SBOMs."""
