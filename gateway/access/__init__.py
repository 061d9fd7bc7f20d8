"""Who is asking and what they may read: tokens, principals, the person index, the record
reader and the patient's choices.
"""
