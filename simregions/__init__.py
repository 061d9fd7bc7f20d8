"""Simulated Swedish regional systems: real FHIR R4 servers on loopback, for the demo,
the integration tests and the benchmarks.

Three fictitious regions each run their own HTTP server with their own data, bearer token
and FHIR dialect. All people are synthetic (valid check digits, made-up names and
addresses, telephone numbers from the range reserved for fiction) and the data is the same
on every start: it is generated from fixed seeds relative to a fixed reference date,
2026-11-01, so "future" appointments are future as seen from that day.

=============  ==============  ==========================  ===========  =========  ==========
region         port / token    personnummer                lab codes    page size  other
=============  ==============  ==========================  ===========  =========  ==========
Region Nord    8101            canonical ``YYYYMMDDNNNC``  LOINC        10         UUID ids
``nord``       sim-nord-token  national system
Region Väst    8102            ``YYMMDD-NNNC``, ``+`` for  LOINC, some  25         numeric ids
``vast``       sim-vast-token  age 100+, local system      other units
Region Syd     8103            canonical, national system  NPU          50         some times
``syd``        sim-syd-token                                                       without zone
=============  ==============  ==========================  ===========  =========  ==========

How the dialects differ, in detail:

* **Identifiers.** Nord and Syd write the canonical 12-digit personnummer under
  ``http://electronichealth.se/identifier/personnummer`` (samordningsnummer under
  ``.../samordningsnummer``). Väst writes the 10-digit form with a separator, ``121212+1212``
  for Tolvan (``+`` from the year a person turns 100, ``-`` otherwise), under its local system
  ``http://regionvast.example.se/identifier/personnummer`` for both kinds of number. A Patient
  search matches only the region's own system and format: asking Väst with the national
  system, or Nord with ``19121212-1212``, finds nothing.
* **Lab codes and units.** Nord and Väst code results in LOINC; Syd in NPU
  (``urn:oid:1.2.208.176.2.1``), falling back to its own
  ``http://regionsyd.example.se/CodeSystem/labanalys`` for the few analyses without an NPU
  code (eGFR, cystatin C, troponin T). Väst reports glucose in mg/dL (LOINC 2345-7),
  haemoglobin in g/dL, creatinine in mg/dL (LOINC 2160-0) and ALAT in U/L; the others use
  the Swedish units (mmol/L, g/L, µmol/L, µkat/L). Every quantity is UCUM-coded.
* **Times.** Syd sends about half of its clinical dateTimes (Observation.effective,
  Encounter.period, Condition.onset, MedicationRequest.authoredOn) as Swedish local time
  without a UTC offset. Instants (``meta.lastUpdated``, ``issued``, Appointment start) are
  always complete.
* **Paging.** Each region caps ``_count`` at its page size and links to the next page with
  an absolute URL carrying an opaque cursor under its own parameter name: ``_cursor`` (Nord),
  ``_getpages`` (Väst), ``ct`` (Syd). Bundles carry ``total``.
* **Ids.** Local Patient ids differ per region and are never the personnummer; Väst uses
  sequence numbers, the others UUIDs.

Common to all: ``GET /fhir/metadata`` (no token), read ``GET /fhir/{type}/{id}``, search
``GET /fhir/{type}?...`` and ``POST /fhir/{type}/_search`` (form), per patient with
``patient=`` or ``subject=`` for Observation, MedicationRequest, Appointment, Encounter,
Condition, DocumentReference, AllergyIntolerance, Immunization, Procedure, CarePlan,
CareTeam, Flag, DiagnosticReport, ServiceRequest and MedicationDispense, plus token filters
and ``_lastUpdated``. Unknown search parameters are ignored and reported in an
OperationOutcome entry (``search.mode = outcome``); unknown types are a 400, unknown ids a
404, a missing token a 401, all as OperationOutcome. Types served: Patient, Organization
(care provider and care units with HSA-ids), Location, Practitioner, and the fifteen
patient types above.

The data: every region has 70-80 people (at least 50), the test person 19121212-1212 Tolvan
Tolvansson in all three with about 1,250 resources in total, everyone else 10 to 60 per region
(besides a child's growth curve).
A few people have a samordningsnummer, two more are over 100, a few children under 13 have
guardians among the people (``GET /_sim/relations``), two have protected identity
(``meta.security`` R, no address). Deliberate duplicates of Tolvan's data exist
across regions for the deduplication work; :func:`simregions.data.deliberate_duplicates`
lists them.

Misbehaviour on demand: a :class:`~simregions.behaviour.Behaviour` per region, read on every
request, adds latency and one fault mode to ``/fhir`` routes (``error-500``,
``unavailable-503``, ``rate-limit-429``, ``timeout``, ``malformed-json``, ``invalid-fhir``,
``reset``, ``next-loop``, ``slow-drip``, ``down``), optionally only for some paths and with a
seeded probability. Change it in-process or with ``PUT /_sim/behaviour`` (bearer token).

Running them: ``python -m simregions --all`` (or ``--region nord --port 8101``);
:func:`simregions.launch.serve_regions` in an event loop; or
``simregions.server.start_in_thread(simregions.app.create_app(spec))`` in tests.
"""
