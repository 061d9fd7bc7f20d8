"""One record from many: linking source patients, admitting and normalising resources,
duplicates and provenance.
"""
