"""Bulk Data export ($export): jobs, their files, de-identification."""
