"""Shared type aliases."""

from __future__ import annotations

from typing import Any

Resource = dict[str, Any]  # a parsed FHIR resource or JSON object
