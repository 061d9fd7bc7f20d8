// Taking the record along: the patient summary (Patient/{id}/$summary, the IPS document)
// in Swedish, ready to print; the summary and the whole record downloaded as files
// (Patient/{id}/$download); and sharing with a care unit for a limited time, in one step
// (a Consent with a period, as the consents view makes them).

import { CATEGORIES } from './categories.js';
import { consentBody } from './choices.js';
import { announce, el, formatDate, table } from './dom.js';
import { fhirFetch, fhirJson } from './smart.js';

/** The IPS sections by LOINC code, in Swedish, in the order the document has them. */
const SECTIONS = {
  '10160-0': 'Läkemedel',
  '48765-2': 'Allergier och överkänslighet',
  '11450-4': 'Aktuella problem och diagnoser',
  '11348-0': 'Tidigare sjukdomar',
  '11369-6': 'Vaccinationer',
  '30954-2': 'Provsvar och undersökningar',
  '8716-3': 'Vitalparametrar',
  '46240-8': 'Vårdkontakter',
  '47519-4': 'Åtgärder',
  '18776-5': 'Vårdplaner',
  '104605-1': 'Uppmärksamhetsinformation',
};

/** Days a consent made here lasts unless the person chooses otherwise. */
export const SHARE_DAYS = 30;

function errorText(error) {
  return `Det gick inte: ${error.message || error}`;
}

/** A date and a line of text for a resource, by the overview's rules for its kind. */
function describe(resource) {
  if (resource.resourceType === 'MedicationStatement') {
    const concept = resource.medicationCodeableConcept || {};
    return { date: resource.effectiveDateTime, line: concept.text || '' };
  }
  const category = CATEGORIES.find((c) => c.test(resource));
  if (!category) return { date: null, line: resource.resourceType };
  const line = category.line(resource);
  // A current prescription's latest dispensing is listed beside it.
  const prefix = resource.resourceType === 'MedicationDispense' ? 'Uthämtat: ' : '';
  return { date: category.date(resource), line: `${prefix}${line}` };
}

function sectionTitle(section) {
  const code = ((section.code && section.code.coding) || [])[0];
  return (code && SECTIONS[code.code]) || section.title;
}

function summarySection(section, index, byUrl) {
  const title = sectionTitle(section);
  const heading = el('h2', { id: `sam-${index}` }, title);
  const entries = (section.entry || []).map((e) => byUrl.get(e.reference)).filter(Boolean);
  const body = entries.length
    ? table(
        title,
        ['Datum', 'Uppgift'],
        entries.map((r) => {
          const { date, line } = describe(r);
          return [formatDate(date), line];
        }),
      )
    : el('p', {}, 'Inga uppgifter.');
  return el('section', { class: 'category', 'aria-labelledby': heading.id }, heading, body);
}

function patientLine(patient) {
  if (!patient) return null;
  const name = ((patient.name || [])[0] || {});
  const full = name.text || [...(name.given || []), name.family].filter(Boolean).join(' ');
  return el('p', { class: 'strong' }, `${full}${patient.birthDate ? `, född ${patient.birthDate}` : ''}`);
}

/** Save `blob` as a file named `name`, as the browser saves a download. */
function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = el('a', { href: url, download: name, class: 'visually-hidden' }, name);
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function fileName(answer, fallback) {
  const found = /filename="([^"]+)"/.exec(answer.headers.get('Content-Disposition') || '');
  return found ? found[1] : fallback;
}

function downloadButton(patientId, content, label, fallback, message) {
  return el(
    'button',
    {
      type: 'button',
      onclick: async () => {
        message.textContent = 'Hämtar …';
        try {
          const answer = await fhirFetch(
            `/Patient/${encodeURIComponent(patientId)}/$download?content=${content}`,
            { headers: { Accept: '*/*' } },
          );
          const name = fileName(answer, fallback);
          save(await answer.blob(), name);
          message.textContent = `Filen ${name} är nedladdad.`;
        } catch (error) {
          message.textContent = errorText(error);
        }
      },
    },
    label,
  );
}

/** "Skriv ut": the browser's print dialogue; the print style sheet leaves out the app's
 * buttons, menus and forms. */
export function printButton() {
  return el('button', { type: 'button', class: 'no-print', onclick: () => window.print() }, 'Skriv ut');
}

/** A line only the printed page shows: where and when it was printed. */
export function printedLine() {
  const now = new Date();
  return el('p', { class: 'print-only' }, `Utskrift från Samlad ${formatDate(now.toISOString())}.`);
}

function takeAlong(patientId) {
  const message = el('p', { role: 'status', class: 'form-message' });
  return el(
    'section',
    { class: 'no-print', 'aria-labelledby': 'ta-med' },
    el('h2', { id: 'ta-med' }, 'Ta med dig journalen'),
    el(
      'p',
      {},
      'Sammanfattningen är i det europeiska formatet för patientöversikter (IPS), som andra vårdgivare kan läsa. Hela journalen får du som en fil med en uppgift per rad, med varifrån varje uppgift kommer.',
    ),
    el(
      'p',
      { class: 'actions' },
      downloadButton(patientId, 'summary', 'Ladda ner sammanfattningen', 'patientsammanfattning.json', message),
      ' ',
      downloadButton(patientId, 'record', 'Ladda ner hela journalen', 'journal.ndjson', message),
      ' ',
      printButton(),
    ),
    message,
  );
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function shareForm(patientId, config, knownIds) {
  const message = el('p', { role: 'status', class: 'form-message' });
  const form = el(
    'form',
    {
      class: 'choice no-print',
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const hsaId = form.elements['dela-hsa'].value.trim();
        const days = Number(form.elements['dela-dagar'].value);
        if (!/^SE[0-9A-Za-z-]+$/.test(hsaId)) {
          message.textContent = 'Skriv vårdenhetens HSA-id, till exempel SE2321009001-MEDM.';
          form.elements['dela-hsa'].focus();
          return;
        }
        if (!Number.isInteger(days) || days < 1 || days > 365) {
          message.textContent = 'Skriv ett antal dagar från 1 till 365.';
          form.elements['dela-dagar'].focus();
          return;
        }
        let start;
        try {
          start = await gatewayNow();
        } catch (error) {
          message.textContent = errorText(error);
          return;
        }
        const end = new Date(start.getTime() + days * 86_400_000);
        const body = consentBody(patientId, config, 'permit', hsaId, 'care-unit');
        body.provision.period = { start: start.toISOString(), end: end.toISOString() };
        try {
          await fhirJson('/Consent', {
            method: 'POST',
            headers: { 'Content-Type': 'application/fhir+json' },
            body: JSON.stringify(body),
          });
          message.textContent = `Delat med ${hsaId} till och med ${formatDate(isoDay(end))}.`;
          announce(message.textContent);
        } catch (error) {
          message.textContent = errorText(error);
        }
      },
    },
    el(
      'fieldset',
      {},
      el('legend', {}, 'Dela med en vårdenhet'),
      el(
        'p',
        {},
        'Vårdenheten får läsa dina uppgifter under den tid du väljer. Du kan återkalla det när som helst under Samtycken och spärrar.',
      ),
      el('label', { for: 'dela-hsa' }, 'Vårdenhetens HSA-id'),
      el('input', { id: 'dela-hsa', name: 'dela-hsa', list: 'dela-kanda', autocomplete: 'off', required: true }),
      el('label', { for: 'dela-dagar' }, 'Antal dagar'),
      el('input', {
        id: 'dela-dagar',
        name: 'dela-dagar',
        type: 'number',
        min: '1',
        max: '365',
        value: String(SHARE_DAYS),
        required: true,
      }),
      el('button', { type: 'submit' }, 'Dela'),
    ),
    el('datalist', { id: 'dela-kanda' }, [...knownIds].sort().map((id) => el('option', { value: id }))),
    message,
  );
  return form;
}

/**
 * The view "Sammanfattning": the patient summary of patient `id` in Swedish, the
 * downloads, printing, and sharing with a care unit. `knownIds`: HSA-ids seen in the
 * record, suggested.
 */
export async function showSummary(main, patientId, config, knownIds) {
  const loading = el('p', { 'aria-busy': 'true' }, 'Hämtar sammanfattningen …');
  main.append(loading);
  const document_ = await fhirJson(`/Patient/${encodeURIComponent(patientId)}/$summary`);
  const byUrl = new Map((document_.entry || []).map((e) => [e.fullUrl, e.resource]));
  const composition = (document_.entry || [])[0].resource;
  const patient = byUrl.get(composition.subject && composition.subject.reference);
  loading.replaceWith(
    printedLine(),
    el(
      'p',
      {},
      `Patientsammanfattning från alla källor, gjord ${formatDate(composition.date)}: läkemedel, allergier, diagnoser, vaccinationer, provsvar och mer.`,
    ),
    patientLine(patient),
    takeAlong(patientId),
    shareForm(patientId, config, knownIds),
    ...(composition.section || []).map((s, i) => summarySection(s, i, byUrl)),
  );
  announce('Sammanfattningen är klar.');
}

/**
 * The gateway's time now (the Date header of its answer): a share's period is counted
 * from the clock that decides on it, not from this device's, which may be wrong.
 */
async function gatewayNow() {
  const answer = await fhirFetch('/metadata', { cache: 'no-store' });
  const date = Date.parse(answer.headers.get('Date') || '');
  return Number.isNaN(date) ? new Date() : new Date(date);
}
