// What the citizen reports themselves: a blood pressure (an Observation) and the symptom
// form (a QuestionnaireResponse), sent to the FHIR API. Each form fill has its own
// Idempotency-Key, so sending it again (a double click, a retry) stores it once.

import { announce, el } from './dom.js';
import { FhirError, fhirJson } from './smart.js';

const SEVERITIES = [
  ['mild', 'Lindrigt'],
  ['moderate', 'Måttligt'],
  ['severe', 'Svårt'],
];

function errorText(error) {
  if (error instanceof FhirError) return `Det gick inte: ${error.message}`;
  return `Det gick inte: ${error.message || error}`;
}

function component(config, code, value) {
  return {
    code: { coding: [{ system: config.systems.loinc, code }] },
    valueQuantity: { value, unit: 'mmHg', system: config.systems.ucum, code: 'mm[Hg]' },
  };
}

function bloodPressure(patientId, config, systolic, diastolic) {
  return {
    resourceType: 'Observation',
    status: 'final',
    category: [{ coding: [{ system: config.systems.observationCategory, code: 'vital-signs' }] }],
    code: { coding: [{ system: config.systems.loinc, code: '85354-9' }] },
    subject: { reference: `Patient/${patientId}` },
    effectiveDateTime: new Date().toISOString(),
    component: [component(config, '8480-6', systolic), component(config, '8462-4', diastolic)],
  };
}

function symptomAnswers(patientId, config, text, severity, fever) {
  const item = [{ linkId: 'symptom', answer: [{ valueString: text }] }];
  if (severity) {
    item.push({
      linkId: 'severity',
      answer: [{ valueCoding: { system: config.systems.symptomSeverity, code: severity } }],
    });
  }
  item.push({ linkId: 'fever', answer: [{ valueBoolean: fever }] });
  return {
    resourceType: 'QuestionnaireResponse',
    questionnaire: config.symptomForm,
    status: 'completed',
    subject: { reference: `Patient/${patientId}` },
    item,
  };
}

function sender(path, message) {
  let key = crypto.randomUUID();
  return async (body, done) => {
    try {
      await fhirJson(path, {
        method: 'POST',
        headers: { 'Content-Type': 'application/fhir+json', 'Idempotency-Key': key },
        body: JSON.stringify(body),
      });
      key = crypto.randomUUID(); // the next fill is a new record
      message.textContent = done;
      announce(done);
    } catch (error) {
      message.textContent = errorText(error);
    }
  };
}

function numberField(id, label) {
  return [
    el('label', { for: id }, label),
    el('input', { id, name: id, type: 'number', inputmode: 'numeric', min: '10', max: '300', required: true }),
  ];
}

function pressureForm(patientId, config) {
  const message = el('p', { role: 'status', class: 'form-message' });
  const send = sender('/Observation', message);
  const form = el(
    'form',
    {
      class: 'choice',
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const systolic = Number(form.elements.systoliskt.value);
        const diastolic = Number(form.elements.diastoliskt.value);
        if (!systolic || !diastolic) {
          message.textContent = 'Skriv det övre och det undre trycket i mmHg.';
          form.elements.systoliskt.focus();
          return;
        }
        await send(
          bloodPressure(patientId, config, systolic, diastolic),
          'Blodtrycket är sparat. Det syns i Min översikt som rapporterat av dig.',
        );
      },
    },
    el(
      'fieldset',
      {},
      el('legend', {}, 'Blodtryck'),
      numberField('systoliskt', 'Övre tryck (systoliskt, mmHg)'),
      numberField('diastoliskt', 'Undre tryck (diastoliskt, mmHg)'),
      el('button', { type: 'submit', class: 'primary' }, 'Spara blodtryck'),
    ),
    message,
  );
  return form;
}

function symptomForm(patientId, config) {
  const message = el('p', { role: 'status', class: 'form-message' });
  const send = sender('/QuestionnaireResponse', message);
  const form = el(
    'form',
    {
      class: 'choice',
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const text = form.elements.symtom.value.trim();
        if (!text) {
          message.textContent = 'Beskriv vad som besvärar dig.';
          form.elements.symtom.focus();
          return;
        }
        await send(
          symptomAnswers(patientId, config, text, form.elements.svarighet.value, form.elements.feber.checked),
          'Symtombeskrivningen är sparad. Den syns i Min översikt som rapporterad av dig.',
        );
      },
    },
    el(
      'fieldset',
      {},
      el('legend', {}, 'Beskriv dina symtom'),
      el('label', { for: 'symtom' }, 'Vad besvärar dig?'),
      el('textarea', { id: 'symtom', name: 'symtom', rows: '4', maxlength: '2000', required: true }),
      el('label', { for: 'svarighet' }, 'Hur svårt är det?'),
      el(
        'select',
        { id: 'svarighet', name: 'svarighet' },
        el('option', { value: '' }, 'Vill inte ange'),
        SEVERITIES.map(([code, text]) => el('option', { value: code }, text)),
      ),
      el('label', { for: 'feber', class: 'check' }, el('input', { id: 'feber', name: 'feber', type: 'checkbox' }), ' Jag har feber'),
      el('button', { type: 'submit', class: 'primary' }, 'Spara symtombeskrivning'),
    ),
    message,
  );
  return form;
}

/** The view: record a blood pressure, describe symptoms. */
export function showOwnData(main, patientId, config) {
  main.append(
    el('p', {}, 'Det du sparar här blir en del av din journal i Samlad, märkt som rapporterat av dig. Vårdpersonal ser det bara om du har gett deras vårdgivare samtycke.'),
    pressureForm(patientId, config),
    symptomForm(patientId, config),
  );
}
