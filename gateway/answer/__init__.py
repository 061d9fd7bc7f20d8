"""Shaping the answer: FHIR search over the unified record, paging, the patient summary,
streamed $everything and Bundles.
"""
