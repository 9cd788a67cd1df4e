"""`polybuild release X`: the checked, reproducible, checksummed and tagged release of the whole workspace."""
