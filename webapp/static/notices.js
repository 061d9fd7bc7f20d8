// The citizen's notices (Patient/{id}/$notification-settings): be told by e-mail when
// something new arrives in the record or someone else reads it, with quiet hours. The
// messages themselves never hold anything from the record.

import { el } from './dom.js';
import { FhirError, fhirJson } from './smart.js';

const KINDS = [
  ['lab-result', 'Nya provsvar'],
  ['note', 'Nya anteckningar'],
  ['appointment', 'Nya eller ändrade bokningar'],
  ['access', 'När någon annan läser min journal'],
];

function values(parameters) {
  const found = { kinds: new Set() };
  for (const p of parameters || []) {
    if (p.name === 'kind') found.kinds.add(p.valueCode);
    else found[p.name] = p.valueString || p.valueUrl || p.valueTime || '';
  }
  return found;
}

function body(form) {
  const parameter = KINDS.filter(([code]) => form.elements[`typ-${code}`].checked).map(([code]) => ({
    name: 'kind',
    valueCode: code,
  }));
  const email = form.elements.epost.value.trim();
  if (email) parameter.push({ name: 'email', valueString: email });
  const start = form.elements.tyst_fran.value;
  const end = form.elements.tyst_till.value;
  if (start && end) {
    parameter.push({ name: 'quietStart', valueTime: `${start}:00` });
    parameter.push({ name: 'quietEnd', valueTime: `${end}:00` });
  }
  return { resourceType: 'Parameters', parameter };
}

/** The view "Meddelanden": what the person is told of, and where. */
export async function showNotices(main, patientId) {
  const url = `/Patient/${encodeURIComponent(patientId)}/$notification-settings`;
  const current = values((await fhirJson(url)).parameter);
  const message = el('p', { role: 'status', class: 'form-message' });
  const form = el(
    'form',
    {
      class: 'choice',
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          const saved = await fhirJson(url, {
            method: 'POST',
            headers: { 'Content-Type': 'application/fhir+json' },
            body: JSON.stringify(body(form)),
          });
          message.textContent = saved.parameter.length
            ? 'Sparat. Du får meddelanden enligt dina val.'
            : 'Sparat. Du får inga meddelanden.';
        } catch (error) {
          message.textContent = `Det gick inte: ${error instanceof FhirError ? error.message : error}`;
        }
      },
    },
    el(
      'fieldset',
      {},
      el('legend', {}, 'Meddela mig'),
      ...KINDS.map(([code, text]) =>
        el(
          'label',
          { class: 'check' },
          el('input', { type: 'checkbox', name: `typ-${code}`, checked: current.kinds.has(code) }),
          ` ${text}`,
        ),
      ),
    ),
    el(
      'fieldset',
      {},
      el('legend', {}, 'Hur och när'),
      el('label', { for: 'epost' }, 'E-postadress'),
      el('input', { id: 'epost', name: 'epost', type: 'email', autocomplete: 'email', value: current.email || '' }),
      el('label', { for: 'tyst_fran' }, 'Inga meddelanden från (klockan)'),
      el('input', { id: 'tyst_fran', name: 'tyst_fran', type: 'time', value: (current.quietStart || '').slice(0, 5) }),
      el('label', { for: 'tyst_till' }, 'till'),
      el('input', { id: 'tyst_till', name: 'tyst_till', type: 'time', value: (current.quietEnd || '').slice(0, 5) }),
      el('button', { type: 'submit' }, 'Spara'),
    ),
    message,
  );
  main.append(
    el(
      'p',
      {},
      'Välj om du vill få ett e-postmeddelande när något nytt kommer in i din journal eller när någon annan läser den. ' +
        'Meddelandet innehåller inga uppgifter ur journalen, bara en länk hit. Nödåtkomst meddelas alltid när du har angett en adress.',
    ),
    form,
  );
}
