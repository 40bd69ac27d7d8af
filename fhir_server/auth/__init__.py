"""Authorization: SMART Backend Services (token endpoint, client registry, scopes)."""
