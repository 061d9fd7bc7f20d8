// The person's seals of their own online view (the FHIR Consent API, docs/consent.md
// "Seals and delayed release"): hide a care provider's or unit's data from themselves
// (and from whoever reads for them) until they lift it, and hold back new entries for
// a number of days (delayed release).

import { el } from './dom.js';
import { fhirJson } from './smart.js';

const DEFAULT_DAYS = 14;

/** The online-access code of a Consent (`seal`, `delayed-release`), or null. */
export function sealCode(consent, config) {
  for (const concept of consent.category || []) {
    const found = (concept.coding || []).find((c) => c.system === config.systems.onlineAccess);
    if (found) return found.code;
  }
  return null;
}

function patientActor(patientId, config) {
  return {
    role: { coding: [{ system: config.systems.roleClass, code: 'PAT' }] },
    reference: { reference: `Patient/${patientId}` },
  };
}

function sealBody(patientId, config, code, extra) {
  return {
    resourceType: 'Consent',
    status: 'active',
    scope: { coding: [{ system: config.systems.consentScope, code: 'patient-privacy' }] },
    category: [
      { coding: [{ system: config.systems.loinc, code: '59284-0' }] },
      { coding: [{ system: config.systems.onlineAccess, code }] },
    ],
    patient: { reference: `Patient/${patientId}` },
    provision: { type: 'deny', actor: [patientActor(patientId, config)], ...extra },
  };
}

function organisationActor(config, hsaId, level) {
  return {
    role: { coding: [{ system: config.systems.participationType, code: 'CST' }] },
    reference: {
      extension: [{ url: config.extensions.organisationLevel, valueCode: level }],
      identifier: { system: config.systems.hsaId, value: hsaId },
    },
  };
}

async function post(body) {
  return fhirJson('/Consent', {
    method: 'POST',
    headers: { 'Content-Type': 'application/fhir+json' },
    body: JSON.stringify(body),
  });
}

/** What a seal covers, in words, and how long delayed release holds back. */
export function sealText(consent, config) {
  const provision = consent.provision || {};
  if (sealCode(consent, config) === 'delayed-release') {
    const delay = (provision.extension || []).find((e) => e.url === config.extensions.releaseDelay);
    const days = (delay && delay.valueDuration && delay.valueDuration.value) || DEFAULT_DAYS;
    return { kind: 'Fördröjd visning', what: `nya uppgifter visas efter ${days} dagar` };
  }
  const organisation = (provision.actor || []).find((a) => a.reference && a.reference.identifier);
  if (organisation) {
    const level = (organisation.reference.extension || []).find(
      (e) => e.url === config.extensions.organisationLevel,
    );
    const levelText = level && level.valueCode === 'care-unit' ? 'vårdenhet' : 'vårdgivare';
    return { kind: 'Dold för dig', what: `${organisation.reference.identifier.value} (${levelText})` };
  }
  if (provision.dataPeriod) {
    return { kind: 'Dold för dig', what: `uppgifter ${provision.dataPeriod.start} – ${provision.dataPeriod.end}` };
  }
  return { kind: 'Dold för dig', what: 'hela journalen' };
}

/** The form that hides a care provider's or unit's data from the person's own view. */
export function sealForm(patientId, config, done, failed) {
  const message = el('p', { role: 'status', class: 'form-message' });
  const form = el(
    'form',
    {
      class: 'choice',
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const hsaId = form.elements['hsa-seal'].value.trim();
        const level = form.elements['niva-seal'].value;
        if (!/^SE[0-9A-Za-z-]+$/.test(hsaId)) {
          message.textContent = 'Skriv ett HSA-id, till exempel SE2321009003-SYD0.';
          form.elements['hsa-seal'].focus();
          return;
        }
        try {
          const actor = [patientActor(patientId, config), organisationActor(config, hsaId, level)];
          await post(sealBody(patientId, config, 'seal', { actor }));
          message.textContent = `${hsaId} är dold för dig.`;
          await done(message.textContent);
        } catch (error) {
          message.textContent = failed(error);
        }
      },
    },
    el(
      'fieldset',
      {},
      el('legend', {}, 'Dölj för dig själv'),
      el(
        'p',
        { class: 'hint' },
        'Uppgifterna visas inte för dig, dina ombud eller vårdnadshavare förrän du tar bort spärren. Vården ser dem som förut.',
      ),
      el('label', { for: 'hsa-seal' }, 'HSA-id'),
      el('input', { id: 'hsa-seal', name: 'hsa-seal', list: 'kanda-hsa', autocomplete: 'off', required: true }),
      el('label', { for: 'niva-seal' }, 'Nivå'),
      el(
        'select',
        { id: 'niva-seal', name: 'niva-seal' },
        el('option', { value: 'care-provider' }, 'Vårdgivare'),
        el('option', { value: 'care-unit' }, 'Vårdenhet'),
      ),
      el('button', { type: 'submit' }, 'Dölj'),
    ),
    message,
  );
  return form;
}

/** The form that turns delayed release on (off is lifting it in the table). */
export function delayForm(patientId, config, done, failed) {
  const message = el('p', { role: 'status', class: 'form-message' });
  const form = el(
    'form',
    {
      class: 'choice',
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const days = Number.parseInt(form.elements['dagar'].value, 10);
        if (!(days >= 1 && days <= 365)) {
          message.textContent = 'Välj mellan 1 och 365 dagar.';
          form.elements['dagar'].focus();
          return;
        }
        const duration = { value: days, unit: 'd', system: config.systems.ucum, code: 'd' };
        try {
          await post(
            sealBody(patientId, config, 'delayed-release', {
              extension: [{ url: config.extensions.releaseDelay, valueDuration: duration }],
            }),
          );
          message.textContent = `Nya uppgifter visas för dig efter ${days} dagar.`;
          await done(message.textContent);
        } catch (error) {
          message.textContent = failed(error);
        }
      },
    },
    el(
      'fieldset',
      {},
      el('legend', {}, 'Fördröjd visning'),
      el(
        'p',
        { class: 'hint' },
        'Visa inte nya uppgifter för dig förrän de är några dagar gamla, så att vården hinner berätta först. Stäng av i tabellen ovan.',
      ),
      el('label', { for: 'dagar' }, 'Antal dagar'),
      el('input', { id: 'dagar', name: 'dagar', type: 'number', min: '1', max: '365', value: String(DEFAULT_DAYS) }),
      el('button', { type: 'submit' }, 'Slå på fördröjd visning'),
    ),
    message,
  );
  return form;
}
