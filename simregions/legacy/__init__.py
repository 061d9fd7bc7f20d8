"""Region Öst: a simulated legacy regional system that speaks XML over HTTP, not FHIR.

Modelled on the Swedish national RIVTA service contracts (SOAP 1.1, RIVTA BP 2.1): one
POSTed request per domain, the person identified by personnummer in the request body,
records returned as XML with a common header. Served on port 8104 by default, token
``sim-ost-token``, base URL ``http://127.0.0.1:8104/rivta``.

=============================  ====================================================
contract                       what it returns (becomes, through the legacy-xml adapter)
=============================  ====================================================
GetPatientDemographics 1       name, sex (M/K), birth date, address (Patient)
GetMedicationHistory 2         prescriptions, ATC + NPL-id (MedicationRequest)
GetLaboratoryOrderOutcome 4    lab orders with NPU-coded analyses (Observation,
                               DiagnosticReport)
GetCareContacts 3              visits, calls, stays with unit and period (Encounter)
GetCareDocumentation 2         journal notes in plain text (DocumentReference)
GetDiagnosis 2                 diagnoses set at contacts, ICD-10-SE (Condition)
GetAlertInformation 2          hypersensitivities and other alerts (AllergyIntolerance,
                               Flag)
GetVaccinationHistory 2        vaccinations, ATC-coded (Immunization)
GetReferralOutcome 3           referrals and their answers (ServiceRequest,
                               DiagnosticReport)
GetImagingOutcome 1            imaging reports (DiagnosticReport)
GetCarePlans 2                 care plans: SIP, care and rehabilitation plans (CarePlan)
GetFunctionalStatus 2          PADL and disability assessments (Observation)
GetMaternityMedicalHistory 2   antenatal registration and check-ups (Observation)
=============================  ====================================================

A request::

    <soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
      <soapenv:Header>
        <add:LogicalAddress xmlns:add="urn:riv:itintegration:registry:1"
          >SE2321009004-OST0</add:LogicalAddress>
      </soapenv:Header>
      <soapenv:Body>
        <r:GetLaboratoryOrderOutcome
            xmlns:r="urn:riv:clinicalprocess:healthcond:actoutcome:GetLaboratoryOrderOutcomeResponder:4"
            xmlns:c="urn:riv:clinicalprocess:healthcond:actoutcome:4">
          <r:patientId><c:id>191212121212</c:id><c:type>1.2.752.129.2.1.3.1</c:type></r:patientId>
        </r:GetLaboratoryOrderOutcome>
      </soapenv:Body>
    </soapenv:Envelope>

The dialect's habits: times are Swedish wall-clock ``YYYYMMDDhhmmss`` without a zone,
dates ``YYYYMMDD``, lab values with a decimal comma and units as Swedish labs print them
(``µmol/L``, ``10^9/L``, ``mIE/L``), sex as ``M``/``K``, codes as OIDs (NPU, ATC, NPL-id,
ICD-10-SE). There are no bookings (Appointment). An unknown person gets an empty
answer, not a Fault. Who is in it and the planted duplicates:
:mod:`simregions.legacy.records`; faults: :mod:`simregions.legacy.app`.
"""
