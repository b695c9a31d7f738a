"""Storage back ends of the index service."""
