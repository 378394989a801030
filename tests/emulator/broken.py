"""A handler module that fails at import: its init fails."""

raise RuntimeError("cannot initialize")
