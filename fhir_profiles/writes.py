"""What the gateway writes to the systems that own the data: which types accept which
interactions, and the identifier a write carries to its owner so that a repeated
delivery creates nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: The identifier system of the id the gateway gives each write. A create is sent with
#: this identifier and ``If-None-Exist: identifier={system}|{id}``: delivered again after
#: a lost answer, the owner finds what it made the first time.
WRITE_ID_SYSTEM = "https://samlad.se/fhir/sid/write-id"

#: The resource types a client may write, and the interactions each accepts (routed to
#: the system that owns the data; the CapabilityStatement says the same).
WRITABLE: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "Appointment": ("create", "update"),
        "Task": ("create",),
        "Communication": ("create",),
    }
)

#: The SMART permission letter each interaction needs.
PERMISSION = MappingProxyType({"create": "c", "update": "u"})

#: The statuses a booking is made with.
BOOKABLE_STATUSES = frozenset({"proposed", "pending", "booked"})
#: The types a Task's ``focus`` may name: a prescription to renew, an order to fulfil.
TASK_FOCUS_TYPES = frozenset({"MedicationRequest", "ServiceRequest"})
