"""The patient's access log names the signed checkpoint it was read under."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from consent.checkpoints import Checkpoint, CheckpointKey, read_checkpoint_file
from fhir_profiles.extensions import AUDIT_CHECKPOINT_URL
from tests.conftest import IssuerKit
from tests.gateway.conftest import Region, running_gateway

pytestmark = pytest.mark.anyio

_FIELDS = {
    "seq": "seq",
    "headHash": "head_hash",
    "previousSeq": "prev_seq",
    "entriesDigest": "entries_digest",
    "signedAt": "signed_at",
    "keyId": "key_id",
    "signature": "signature",
}


def _checkpoint(bundle: dict[str, Any]) -> Checkpoint:
    (extension,) = bundle["meta"]["extension"]
    assert extension["url"] == AUDIT_CHECKPOINT_URL
    fields = {}
    for part in extension["extension"]:
        (value,) = (v for k, v in part.items() if k.startswith("value"))
        fields[_FIELDS[part["url"]]] = value
    return Checkpoint.from_json({**fields, "signed_at": fields["signed_at"].replace("Z", "+00:00")})


async def test_the_log_carries_the_checkpoint_it_was_read_under(
    database_url: str, issuer: IssuerKit, regions: dict[str, Region]
) -> None:
    async with running_gateway(
        database_url, issuer, regions, audit_checkpoint_every_entries=2
    ) as gateway:
        patient_id = await gateway.patient_id()  # entry 1, anchored at once
        for _ in range(3):  # entries 2 to 4: the checkpoint at 3 falls due
            response = await gateway.client.get(
                f"/fhir/Patient/{patient_id}", headers=gateway.citizen()
            )
            assert response.status_code == 200
        log = await gateway.client.get(
            f"/fhir/AuditEvent?patient={patient_id}", headers=gateway.citizen()
        )
        assert log.status_code == 200
        bundle = log.json()
        Bundle.model_validate(bundle)  # a FHIR-valid place for it
        checkpoint = _checkpoint(bundle)
        key = CheckpointKey.from_hex(gateway.settings.audit_checkpoint_key.get_secret_value())
        assert key.verify_key.verifies(checkpoint)
        # The newest when the answer was made: the reading of the log is entry 5, and
        # with it a checkpoint fell due (two entries since the one at 3).
        assert (checkpoint.prev_seq, checkpoint.seq) == (3, 5)
        assert [int(e["resource"]["id"]) for e in bundle["entry"]] == [4, 3, 2, 1]  # newest first
        file = gateway.settings.effective_audit_checkpoint_file
    # The gateway exported the same checkpoints; nothing was left to anchor at shutdown.
    assert [(c.prev_seq, c.seq) for c in read_checkpoint_file(file)] == [(0, 1), (1, 3), (3, 5)]
    assert read_checkpoint_file(file)[-1] == checkpoint
