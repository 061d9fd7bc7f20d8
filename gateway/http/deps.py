"""FastAPI dependencies: the per-request boundary objects routes are handed."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.access.auth import CurrentPrincipal
from gateway.access.choices import PatientChoices
from gateway.access.emergency import EmergencyOpening
from gateway.access.reader import RecordReader
from gateway.access.referenced import ReferencedReader
from gateway.services import Services


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def record_reader(principal: CurrentPrincipal, request: Request) -> RecordReader:
    return RecordReader(principal, services(request))


async def patient_choices(principal: CurrentPrincipal, request: Request) -> PatientChoices:
    return PatientChoices(principal, services(request))


async def emergency_opening(principal: CurrentPrincipal, request: Request) -> EmergencyOpening:
    return EmergencyOpening(principal, services(request))


async def referenced_reader(principal: CurrentPrincipal, request: Request) -> ReferencedReader:
    return ReferencedReader(principal, services(request))


Reader = Annotated[RecordReader, Depends(record_reader)]
Choices = Annotated[PatientChoices, Depends(patient_choices)]
Emergency = Annotated[EmergencyOpening, Depends(emergency_opening)]
Referenced = Annotated[ReferencedReader, Depends(referenced_reader)]
