"""Audit: AuditEvent resources for what the server does on a client's behalf."""
