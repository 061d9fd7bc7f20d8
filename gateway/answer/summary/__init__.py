"""The International Patient Summary (IPS, HL7 FHIR IG 2.0.0) of one unified record.

:func:`build_summary` turns the unified Patient and the normalised resources that
``RecordReader.everything`` returns into a FHIR ``document`` Bundle conforming to the IPS
profiles (``Bundle-uv-ips``, ``Composition-uv-ips``, ``Patient-uv-ips``,
``MedicationRequest-uv-ips``, ``AllergyIntolerance-uv-ips``, ``Condition-uv-ips``,
``Immunization-uv-ips``, ``Observation-results-laboratory-pathology-uv-ips``,
``Procedure-uv-ips``, ``Flag-alert-uv-ips``, ``DiagnosticReport-uv-ips``, and FHIR's
``vitalsigns``). It is a pure function: the same input and ``now`` give the same
document, byte for byte (ids and UUIDs are derived from the input, never random).

What goes in (a *summary*, not the whole record, which ``$everything`` serves):

- **Medication Summary** (LOINC 10160-0): current prescriptions, the MedicationRequests
  whose status is ``active`` or ``on-hold``, newest first. Completed or stopped ones stay
  out; the section narrative says how many were left out. After them, the latest completed
  MedicationDispense of each (by ``authorizingPrescription``): the IPS section admits
  MedicationDispense entries, which carry no IPS profile (the IPS defines none).
- **Allergies and Intolerances** (48765-2): the AllergyIntolerances, newest recorded
  first (refuted or entered-in-error ones left out). A record without any gives an empty
  section with ``emptyReason`` ``unavailable`` and a narrative that says none were found,
  not that there are none. (``nilknown`` would be a clinical judgement nobody made.)
- **Problem List** (11450-4): Conditions whose clinical status is active, recurrence or
  relapse (or that have neither a clinical status nor an abatement).
- **History of Past Illness** (11348-0): the other (inactive, remission, resolved)
  Conditions, so that no diagnosis silently disappears.
- **Immunizations** (11369-6): the Immunizations given (status ``completed``), newest
  first.
- **Results** (30954-2): laboratory Observations, the latest ``results_per_analysis``
  per analysis (the first LOINC coding, else the first coding), by effective time
  compared in UTC. Results without an effective time or without any value are not
  candidates: a summary result needs both. Then the DiagnosticReports that group any of
  those results (their ``result`` names the ones listed; the others are not in the
  document) and the imaging and other examination reports (a v2-0074 section other than
  LAB) with a conclusion or a written report, newest first
  (``DiagnosticReport-uv-ips``); a report needs a code, an effective time and a status
  that is not withdrawn. A referral's answer without a section (a consultation) is not a
  result.
- **Vital Signs** (8716-3): the latest reading of each vital sign (category
  ``vital-signs``, growth included), newest first, each naming FHIR's ``vitalsigns``
  profile; laboratory results stay in Results, assessments (``survey``) in neither.
- **History of encounters** (46240-8, "History of Hospitalizations+Outpatient visits"):
  the ``max_encounters`` most recent Encounters that are not planned or cancelled.
- **History of Procedures** (47519-4): the Procedures done or under way (not those in
  preparation, not done or entered in error), newest performed first. One without a
  performed time gets ``_performedDateTime`` with the ``data-absent-reason`` extension
  (``unknown``): the IPS requires the element.
- **Plan of Care** (18776-5): the current CarePlans (active or on hold), newest first;
  the narrative says how many earlier ones were left out. The IPS has no CarePlan
  profile, so these entries name none.
- **Alerts** (104605-1): the Flags in force (status ``active``), newest first: alert
  information other than allergies (a treatment, a communicable disease, a restriction
  of care). Ended flags are left out.

Empty required sections carry ``emptyReason`` ``unavailable`` (list-empty-reason);
empty optional sections are left out. Refuted or entered-in-error facts never appear.

How the resources are changed, and why:

- Entries are identified by ``urn:uuid`` fullUrls, UUIDv5 of ``{base_url}/{type}/{id}``,
  and every reference between entries is rewritten to that URN. Resource ids stay the
  gateway's ids, so a reader can still fetch the original.
- References to resources *not* in the document (practitioners, locations, care units)
  keep only their ``identifier`` and ``display`` (a logical reference); one with neither
  is removed. A document must not point at things it does not contain.
- Source narratives (``text``) are replaced by a narrative generated here, every source
  string escaped: a source's XHTML is never copied into the document.
- ``meta.profile`` names the IPS profile the entry conforms to; ``meta.source`` and the
  care tags stay. The gateway's transport extensions (``fetched-at``, ``also-reported-by``)
  are removed: they are not defined in any published package and describe the fetch, not
  the fact. Codings, units and the ``original-quantity`` extension are kept as they are.
- An Observation must name a performer under the IPS: one without any is given a
  Reference carrying only the ``data-absent-reason`` extension (``unknown``). Nothing
  clinical is ever added.

The document's author is a Device (the gateway software, named ``author``), included in
the Bundle. A Patient labelled ``R`` (restricted) makes the Composition's
confidentiality ``R``; otherwise it is ``N``.

The package, one job per module, each importing only those above it in this list:
``fhir_values`` (reading codes, names and times out of resources), ``narrative`` (the
escaped XHTML and each kind of entry's table row), ``entries`` (the entries' URNs and each
resource rewritten for the document), ``dispensed`` and ``vital_signs`` (the
dispensations the Medication Summary lists, the Vital Signs section: choice, rows and
entries), ``selection`` (what each section takes from the
record), ``sections`` (one function per section) and ``document`` (the Composition and the
Bundle around them). The profiles and section codes they name are in
:mod:`fhir_profiles.ips`, the code systems, identifier systems and extensions in
:mod:`fhir_profiles.codes`, :mod:`~fhir_profiles.identifiers` and
:mod:`~fhir_profiles.extensions`.
"""

from gateway.answer.summary.document import build_summary

__all__ = ["build_summary"]
