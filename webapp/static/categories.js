// What the overview shows of each kind of resource: its category (in Swedish), its date,
// and a line of text. One table of rules, read by the overview and the timeline.

function text(concept) {
  if (!concept) return '';
  if (Array.isArray(concept)) return concept.map(text).filter(Boolean).join(', ');
  if (concept.text) return concept.text;
  const coding = (concept.coding || []).find((c) => c.display) || (concept.coding || [])[0];
  return coding ? coding.display || coding.code || '' : '';
}

function quantity(q) {
  if (!q || q.value === undefined) return '';
  return `${q.value}${q.unit ? ` ${q.unit}` : ''}`;
}

function observationValue(o) {
  if (o.valueQuantity) return quantity(o.valueQuantity);
  if (o.valueString) return o.valueString;
  if (o.valueCodeableConcept) return text(o.valueCodeableConcept);
  if (o.component) {
    return o.component.map((c) => `${text(c.code)} ${quantity(c.valueQuantity)}`).join(', ');
  }
  return '';
}

function isCategory(o, code) {
  return (o.category || []).some((c) => (c.coding || []).some((x) => x.code === code));
}

function periodStart(p) {
  return p ? p.start || p.end || null : null;
}

/** Whether the patient reported it themselves (the own source's tag). */
export function isPatientReported(r) {
  return ((r.meta && r.meta.tag) || []).some((t) => t.code === 'patient-reported');
}

function answered(r) {
  const answers = (r.item || []).flatMap((i) => (i.answer || []).map((a) => [i.linkId, a]));
  const symptom = answers.find(([link]) => link === 'symptom');
  const fever = answers.find(([link]) => link === 'fever');
  return [
    symptom ? symptom[1].valueString : '',
    fever && fever[1].valueBoolean ? 'feber' : '',
  ].filter(Boolean).join(', ');
}

/**
 * The categories, in the order shown; `test` picks a category's resources, `shared` is
 * the record category (the gateway's code) a source's coverage names it by.
 */
export const CATEGORIES = [
  {
    id: 'egna',
    title: 'Rapporterat av patienten: mätningar och symtom',
    test: (r) => isPatientReported(r),
    date: (r) => r.effectiveDateTime || r.authored,
    line: (r) =>
      r.resourceType === 'QuestionnaireResponse'
        ? `Symtombeskrivning: ${answered(r)}`
        : `${text(r.code)}: ${observationValue(r)}`,
  },
  {
    id: 'kontakter',
    shared: 'encounters',
    title: 'Vårdkontakter',
    test: (r) => r.resourceType === 'Encounter',
    date: (r) => periodStart(r.period),
    line: (r) => [text(r.type) || 'Vårdkontakt', text(r.reasonCode)].filter(Boolean).join(': '),
  },
  {
    id: 'anteckningar',
    shared: 'notes',
    title: 'Journalanteckningar',
    test: (r) => r.resourceType === 'DocumentReference',
    date: (r) => r.date || (r.context && periodStart(r.context.period)),
    line: (r) => r.description || text(r.type) || 'Anteckning',
  },
  {
    id: 'diagnoser',
    shared: 'diagnoses',
    title: 'Diagnoser',
    test: (r) => r.resourceType === 'Condition',
    date: (r) => r.onsetDateTime || r.recordedDate,
    line: (r) => text(r.code),
  },
  {
    id: 'lakemedel',
    shared: 'medications',
    title: 'Läkemedel (förskrivningar)',
    test: (r) => r.resourceType === 'MedicationRequest',
    date: (r) => r.authoredOn,
    line: (r) =>
      [text(r.medicationCodeableConcept), (r.dosageInstruction || []).map((d) => d.text).join(' ')]
        .filter(Boolean)
        .join(' – '),
  },
  {
    id: 'uttag',
    shared: 'medications',
    title: 'Uthämtade läkemedel',
    test: (r) => r.resourceType === 'MedicationDispense',
    date: (r) => r.whenHandedOver || r.whenPrepared,
    line: (r) => text(r.medicationCodeableConcept) || 'Uttag',
  },
  {
    id: 'vaccinationer',
    shared: 'vaccinations',
    title: 'Vaccinationer',
    test: (r) => r.resourceType === 'Immunization',
    date: (r) => r.occurrenceDateTime,
    line: (r) => text(r.vaccineCode),
  },
  {
    id: 'uppmarksamhet',
    shared: 'alerts',
    title: 'Uppmärksamhetsinformation och allergier',
    test: (r) => r.resourceType === 'AllergyIntolerance' || r.resourceType === 'Flag',
    date: (r) => r.recordedDate || r.onsetDateTime || periodStart(r.period),
    line: (r) =>
      r.resourceType === 'Flag'
        ? text(r.code)
        : `Överkänslighet: ${text(r.code)}${r.criticality === 'high' ? ' (allvarlig)' : ''}`,
  },
  {
    id: 'labb',
    shared: 'lab-results',
    title: 'Labbsvar',
    test: (r) => r.resourceType === 'Observation' && isCategory(r, 'laboratory'),
    date: (r) => r.effectiveDateTime || r.issued,
    line: (r) => `${text(r.code)}: ${observationValue(r)}`,
  },
  {
    id: 'provsvar',
    shared: 'reports',
    title: 'Svar och utlåtanden',
    test: (r) => r.resourceType === 'DiagnosticReport',
    date: (r) => r.effectiveDateTime || r.issued,
    line: (r) => [text(r.code), r.conclusion].filter(Boolean).join(': '),
  },
  {
    id: 'matningar',
    shared: 'vital-signs',
    title: 'Mätningar (vitalparametrar)',
    test: (r) => r.resourceType === 'Observation' && isCategory(r, 'vital-signs'),
    date: (r) => r.effectiveDateTime,
    line: (r) => `${text(r.code)}: ${observationValue(r)}`,
  },
  {
    id: 'bedomningar',
    shared: 'assessments',
    title: 'Bedömningar',
    test: (r) =>
      r.resourceType === 'Observation' && !isCategory(r, 'laboratory') && !isCategory(r, 'vital-signs'),
    date: (r) => r.effectiveDateTime,
    line: (r) => `${text(r.code)}: ${observationValue(r)}`,
  },
  {
    id: 'remisser',
    shared: 'referrals',
    title: 'Remisser',
    test: (r) => r.resourceType === 'ServiceRequest',
    date: (r) => r.authoredOn,
    line: (r) => [text(r.code), r.status === 'completed' ? 'besvarad' : null].filter(Boolean).join(', '),
  },
  {
    id: 'atgarder',
    shared: 'procedures',
    title: 'Åtgärder',
    test: (r) => r.resourceType === 'Procedure',
    date: (r) => r.performedDateTime || periodStart(r.performedPeriod),
    line: (r) => text(r.code),
  },
  {
    id: 'vardplaner',
    shared: 'care-plans',
    title: 'Vårdplaner',
    test: (r) => r.resourceType === 'CarePlan',
    date: (r) => periodStart(r.period) || r.created,
    line: (r) => r.title || r.description || text(r.category),
  },
  {
    id: 'vardteam',
    shared: 'care-plans',
    title: 'Vårdteam',
    test: (r) => r.resourceType === 'CareTeam',
    date: (r) => periodStart(r.period),
    line: (r) => r.name || text(r.category),
  },
  {
    id: 'bokningar-kommande',
    shared: 'appointments',
    title: 'Kommande tidsbokningar',
    test: (r, now) => r.resourceType === 'Appointment' && Date.parse(r.start) >= now,
    date: (r) => r.start,
    line: (r) => r.description || text(r.serviceType) || 'Besök',
    ascending: true,
  },
  {
    id: 'bokningar-tidigare',
    shared: 'appointments',
    title: 'Tidigare tidsbokningar',
    test: (r, now) => r.resourceType === 'Appointment' && !(Date.parse(r.start) >= now),
    date: (r) => r.start,
    line: (r) => r.description || text(r.serviceType) || 'Besök',
  },
];

/** Each resource in its category (the first whose test it passes), newest first. */
export function sortIntoCategories(resources, now) {
  const sorted = new Map(CATEGORIES.map((c) => [c.id, []]));
  for (const resource of resources) {
    const category = CATEGORIES.find((c) => c.test(resource, now));
    if (category) sorted.get(category.id).push(resource);
  }
  for (const category of CATEGORIES) {
    const key = (r) => Date.parse(category.date(r) || '') || 0;
    sorted.get(category.id).sort((a, b) => (category.ascending ? key(a) - key(b) : key(b) - key(a)));
  }
  return sorted;
}

export { text as conceptText, quantity as quantityText };
