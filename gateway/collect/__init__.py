"""Getting each source's data: fan-out, resilience, deadlines, engagement, the encrypted cache
and its refresh.
"""
