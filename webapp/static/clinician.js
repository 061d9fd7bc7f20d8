// The clinician's view (as in Nationell patientöversikt): find a patient by identity number
// (sent in a POST body, never in an address), then the overview when the patient has
// consented; else "inget samtycke" in plain words, how to ask for it, and emergency access
// with a stated reason. Once allowed, a note that some data may be blocked (never what).

import { announce, el } from './dom.js';
import { showOverview } from './overview.js';
import { FhirError, fhirJson } from './smart.js';

const BLOCK_NOTE =
  'Patienten kan ha spärrat uppgifter hos vissa vårdgivare eller vårdenheter. Spärrade uppgifter visas inte, och det syns inte vilka de är eller var de finns.';

function patientName(patient) {
  const name = (patient.name || [])[0];
  if (!name) return 'Patient';
  return name.text || [...(name.given || []), name.family].filter(Boolean).join(' ');
}

// `patient` is the patient found, or null when the search itself was refused: then the
// emergency access names the person by `identifier` (in the body, never an address), and
// the gateway answers the patient's id. `opened(id)` loads the patient once it is open.
function noConsent(main, patient, opened, identifier) {
  const explanation = el(
    'section',
    { class: 'status warn', 'aria-labelledby': 'inget-samtycke' },
    el('h2', { id: 'inget-samtycke' }, 'Inget samtycke'),
    el('p', { class: 'strong' }, `${patient ? patientName(patient) : 'Patienten'} har inte gett din vårdgivare eller vårdenhet samtycke att ta del av uppgifter från andra vårdgivare.`),
    el('p', {}, 'Fråga patienten om samtycke. Patienten ger det själv i Samlad under "Samtycken och spärrar" (till din vårdgivare eller vårdenhet, med dess HSA-id), och du kan sedan söka igen.'),
  );
  const message = el('p', { role: 'status', class: 'form-message' });
  const form = el(
    'form',
    {
      class: 'choice',
      onsubmit: async (event) => {
        event.preventDefault();
        const reason = form.elements.skal.value.trim();
        if (reason.length < 3) {
          message.textContent = 'Ange skälet till nödåtkomsten (minst tre tecken).';
          form.elements.skal.focus();
          return;
        }
        const parameter = [{ name: 'reason', valueString: reason }];
        const path = patient
          ? `/Patient/${encodeURIComponent(patient.id)}/$emergency-access`
          : '/Patient/$emergency-access';
        if (!patient) parameter.push({ name: 'identifier', valueString: identifier });
        try {
          const answer = await fhirJson(path, {
            method: 'POST',
            headers: { 'Content-Type': 'application/fhir+json' },
            body: JSON.stringify({ resourceType: 'Parameters', parameter }),
          });
          const named = (answer.parameter || []).find((p) => p.name === 'patient');
          const id = patient ? patient.id : named.valueReference.reference.split('/')[1];
          announce('Nödåtkomst öppnad. Åtkomsten loggas och följs upp.');
          await opened(id);
        } catch (error) {
          message.textContent = `Det gick inte: ${error.message}`;
        }
      },
    },
    el(
      'fieldset',
      {},
      el('legend', {}, 'Nödåtkomst'),
      el('p', {}, 'Bara om patienten inte kan ge samtycke och det finns en omedelbar risk för patientens liv eller hälsa. Åtkomsten är tidsbegränsad, loggas och följs upp, och patienten ser den i sin logg.'),
      el('label', { for: 'skal' }, 'Skäl till nödåtkomst'),
      el('textarea', { id: 'skal', name: 'skal', rows: '3', required: true, maxlength: '1000' }),
      el('button', { type: 'submit', class: 'danger' }, 'Öppna nödåtkomst'),
    ),
    message,
  );
  main.append(explanation, form);
}

async function openPatient(main, patient, config) {
  const heading = el('h2', { id: 'patient-rubrik', tabindex: '-1' }, patientName(patient));
  const again = el('button', { type: 'button', onclick: () => openPatient(main, patient, config) }, 'Läs in igen');
  const area = el('div', { class: 'patient' }, heading, again);
  main.querySelector('.patient')?.remove();
  main.append(area);
  const opened = () => openPatient(main, patient, config);
  try {
    await showOverview(area, patient.id, config, [
      el('p', { class: 'note', role: 'note' }, BLOCK_NOTE),
    ]);
  } catch (error) {
    area.querySelector('[aria-busy]')?.remove();
    if (error instanceof FhirError && error.status === 403) {
      noConsent(area, patient, opened, null);
    } else {
      area.append(el('p', { class: 'warn' }, `Uppgifterna kunde inte hämtas: ${error.message}`));
    }
  }
  heading.focus();
}

/** The clinician's search form, then the patient. */
export function showClinician(main, config) {
  const message = el('p', { role: 'status', class: 'form-message' });
  const form = el(
    'form',
    {
      class: 'search',
      role: 'search',
      onsubmit: async (event) => {
        event.preventDefault();
        const field = form.elements.personnummer;
        const value = field.value.replace(/[\s-+]/g, '');
        if (!/^\d{10}(\d{2})?$/.test(value)) {
          message.textContent = 'Skriv personnumret med 10 eller 12 siffror.';
          field.focus();
          return;
        }
        message.textContent = 'Söker …';
        const identifier = `${config.systems.personnummer}|${field.value.trim()}`;
        try {
          const bundle = await fhirJson('/Patient/_search', {
            method: 'POST',
            headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({ identifier }),
          });
          const patient = ((bundle.entry || []).find((e) => e.resource && e.resource.resourceType === 'Patient') || {}).resource;
          if (!patient) {
            message.textContent = 'Ingen patient med det personnumret finns hos källorna.';
            return;
          }
          message.textContent = '';
          await openPatient(main, patient, config);
        } catch (error) {
          if (error instanceof FhirError && error.status === 403) {
            message.textContent = '';
            main.querySelector('.patient')?.remove();
            const area = el('div', { class: 'patient' });
            main.append(area);
            const opened = (id) => openPatient(main, { resourceType: 'Patient', id }, config);
            noConsent(area, null, opened, identifier);
            area.querySelector('h2').setAttribute('tabindex', '-1');
            area.querySelector('h2').focus();
          } else {
            message.textContent = `Sökningen gick inte: ${error.message}`;
          }
        }
      },
    },
    el('label', { for: 'personnummer' }, 'Patientens personnummer'),
    el('input', { id: 'personnummer', name: 'personnummer', inputmode: 'numeric', autocomplete: 'off', required: true }),
    el('button', { type: 'submit' }, 'Sök patient'),
    message,
  );
  main.append(
    el('p', {}, 'Sök fram patienten. Med patientens samtycke ser du uppgifter från alla vårdgivare som är anslutna.'),
    form,
  );
}
