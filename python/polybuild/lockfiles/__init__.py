"""Lockfile preflight: every Cargo.lock, go.sum and uv.lock is fresh, and every locked Python package has a
wheel (or an sdist) for each target platform."""
