"""polybuild: one cached, parallel build for monorepos that mix Rust, Python and Go."""

__version__ = "0.1.0"
