"""The HTTP face: FHIR and consent routes, the CapabilityStatement, probes, metrics, headers
and rate limits.
"""
