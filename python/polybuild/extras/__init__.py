"""Extras isolation: the built wheel installs and works with each extras set, and only with what it declares."""
