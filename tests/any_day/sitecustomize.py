"""Moves this process's wall clock a year ahead (``SAMLAD_TEST_YEARS_AHEAD`` years, default
one), for the any-day run of the suite: ``make test-any-day``.

Python starts this module by itself when its folder is on ``PYTHONPATH``, so subprocesses
the tests start (regions, gateway workers) live in the same shifted time. The monotonic
clock and sleeping are left as they are.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import time_machine

_years = float(os.environ.get("SAMLAD_TEST_YEARS_AHEAD", "1"))
_traveller = time_machine.travel(datetime.now(UTC) + timedelta(days=365.25 * _years), tick=True)
_traveller.start()
