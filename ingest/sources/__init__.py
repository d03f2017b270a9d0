"""Site-specific knowledge: how a site names, serves and pages its articles."""
