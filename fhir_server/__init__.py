"""alliance-fhir-server: an HL7 FHIR R4 server for Chinese regional medical alliances."""

__version__ = "0.1.0"
