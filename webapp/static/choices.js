// The citizen's own choices (the FHIR Consent API): give a care provider or unit access,
// withdraw it, block a provider's or unit's data from others and lift the block, give
// another adult a proxy (fullmakt) and withdraw it; and the access log
// (AuditEvent?patient=…): who has looked, emergency accesses and proxies flagged.

import { announce, el, formatDate, table } from './dom.js';
import { delayForm, sealCode, sealForm, sealText } from './seals.js';
import { FhirError, fhirJson } from './smart.js';

const LEVELS = { 'care-provider': 'vårdgivare', 'care-unit': 'vårdenhet' };

export function consentBody(patientId, config, kind, hsaId, level) {
  const permit = kind === 'permit';
  return {
    resourceType: 'Consent',
    status: 'active',
    scope: { coding: [{ system: config.systems.consentScope, code: 'patient-privacy' }] },
    category: [{ coding: [{ system: config.systems.loinc, code: '59284-0' }] }],
    patient: { reference: `Patient/${patientId}` },
    provision: {
      type: kind,
      actor: [
        {
          role: { coding: [{ system: config.systems.participationType, code: permit ? 'IRCP' : 'CST' }] },
          reference: {
            extension: [{ url: config.extensions.organisationLevel, valueCode: level }],
            identifier: { system: config.systems.hsaId, value: hsaId },
          },
        },
      ],
    },
  };
}

/** What a proxy grant may be limited to, in the order offered (record categories). */
const CATEGORIES = {
  medicines: 'Läkemedel',
  'lab-results': 'Provsvar',
  conditions: 'Diagnoser',
  notes: 'Anteckningar',
  vaccinations: 'Vaccinationer',
  appointments: 'Besök och bokningar',
};

function proxyBody(patientId, config, number, categories) {
  const body = consentBody(patientId, config, 'permit', '', 'care-provider');
  body.provision.actor = [
    {
      role: { coding: [{ system: config.systems.roleCode, code: 'HPOWATT' }] },
      reference: { identifier: { system: config.systems.personnummer, value: number } },
    },
  ];
  if (categories.length) {
    body.provision.class = categories.map((code) => ({ system: config.systems.recordCategory, code }));
  }
  return body;
}

function isProxyGrant(consent, config) {
  const actor = ((consent.provision && consent.provision.actor) || [])[0];
  return Boolean(
    actor && ((actor.role && actor.role.coding) || []).some((c) => c.system === config.systems.roleCode && c.code === 'HPOWATT'),
  );
}

function proxyText(consent) {
  const actor = consent.provision.actor[0];
  const value = (actor.reference && actor.reference.identifier && actor.reference.identifier.value) || '';
  const number = /^\d{12}$/.test(value) ? `${value.slice(0, 8)}-${value.slice(8)}` : 'ombud';
  const limits = (consent.provision.class || []).map((c) => CATEGORIES[c.code] || c.code);
  return `${number} (${limits.length ? limits.join(', ').toLowerCase() : 'hela journalen'})`;
}

function proxyForm(patientId, config, refresh) {
  const message = el('p', { role: 'status', class: 'form-message' });
  const boxes = Object.entries(CATEGORIES).map(([code, text]) =>
    el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'kategori', value: code }), ` ${text}`),
  );
  const form = el(
    'form',
    {
      class: 'choice',
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const number = form.elements['ombud-pnr'].value.replace(/[^0-9]/g, '');
        if (number.length !== 12) {
          message.textContent = 'Skriv ombudets personnummer med tolv siffror: ÅÅÅÅMMDD-NNNN.';
          form.elements['ombud-pnr'].focus();
          return;
        }
        const categories = [...form.querySelectorAll('input[name=kategori]:checked')].map((b) => b.value);
        try {
          await fhirJson('/Consent', {
            method: 'POST',
            headers: { 'Content-Type': 'application/fhir+json' },
            body: JSON.stringify(proxyBody(patientId, config, number, categories)),
          });
          message.textContent = 'Fullmakten är given.';
          form.reset();
          await refresh(message.textContent);
        } catch (error) {
          message.textContent = errorText(error);
        }
      },
    },
    el(
      'fieldset',
      {},
      el('legend', {}, 'Ge fullmakt till ett ombud'),
      el('label', { for: 'ombud-pnr' }, 'Ombudets personnummer'),
      el('input', { id: 'ombud-pnr', name: 'ombud-pnr', inputmode: 'numeric', autocomplete: 'off', required: true }),
      el(
        'fieldset',
        { class: 'categories' },
        el('legend', {}, 'Vad får ombudet läsa? Utan val gäller fullmakten hela journalen.'),
        ...boxes,
      ),
      el('button', { type: 'submit' }, 'Ge fullmakt'),
    ),
    message,
  );
  return form;
}

function actorOf(consent, config) {
  const actor = ((consent.provision && consent.provision.actor) || [])[0];
  if (!actor || !actor.reference) return { hsaId: '', level: '' };
  const level = (actor.reference.extension || []).find((e) => e.url === config.extensions.organisationLevel);
  return {
    hsaId: (actor.reference.identifier && actor.reference.identifier.value) || '',
    level: level ? LEVELS[level.valueCode] || level.valueCode : '',
  };
}

function errorText(error) {
  if (error instanceof FhirError) return `Det gick inte: ${error.message}`;
  return `Det gick inte: ${error.message || error}`;
}

function choiceForm(legend, kind, submitText, knownIds, patientId, config, refresh) {
  const idField = `hsa-${kind}`;
  const levelField = `niva-${kind}`;
  const message = el('p', { role: 'status', class: 'form-message' });
  const form = el(
    'form',
    {
      class: 'choice',
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const hsaId = form.elements[idField].value.trim();
        const level = form.elements[levelField].value;
        if (!/^SE[0-9A-Za-z-]+$/.test(hsaId)) {
          message.textContent = 'Skriv ett HSA-id, till exempel SE2321009001-NORD.';
          form.elements[idField].focus();
          return;
        }
        try {
          await fhirJson('/Consent', {
            method: 'POST',
            headers: { 'Content-Type': 'application/fhir+json' },
            body: JSON.stringify(consentBody(patientId, config, kind, hsaId, level)),
          });
          message.textContent = kind === 'permit' ? `Samtycke givet till ${hsaId}.` : `${hsaId} är spärrad.`;
          await refresh(message.textContent);
        } catch (error) {
          message.textContent = errorText(error);
        }
      },
    },
    el(
      'fieldset',
      {},
      el('legend', {}, legend),
      el('label', { for: idField }, 'HSA-id'),
      el('input', { id: idField, name: idField, list: 'kanda-hsa', autocomplete: 'off', required: true }),
      el('label', { for: levelField }, 'Nivå'),
      el(
        'select',
        { id: levelField, name: levelField },
        el('option', { value: 'care-provider' }, 'Vårdgivare'),
        el('option', { value: 'care-unit', selected: kind === 'deny' }, 'Vårdenhet'),
      ),
      el('button', { type: 'submit' }, submitText),
    ),
    message,
  );
  return form;
}

async function consentTable(patientId, config, refresh) {
  const bundle = await fhirJson(`/Consent?patient=${encodeURIComponent(patientId)}`);
  const consents = (bundle.entry || [])
    .map((e) => e.resource)
    .filter((r) => r && r.resourceType === 'Consent');
  if (!consents.length) return el('p', {}, 'Du har inga samtycken, spärrar eller fullmakter.');
  const rows = consents.map((consent) => {
    const permit = consent.provision && consent.provision.type === 'permit';
    const sealed = sealCode(consent, config);
    const proxy = !sealed && isProxyGrant(consent, config);
    const { hsaId, level } = sealed
      ? { hsaId: sealText(consent, config).what, level: '' }
      : proxy
        ? { hsaId: proxyText(consent), level: '' }
        : actorOf(consent, config);
    const active = consent.status === 'active';
    const [buttonText, doneText] = sealed === 'delayed-release'
      ? ['Stäng av', 'Fördröjd visning är avstängd.']
      : sealed
        ? ['Visa igen', `${hsaId} visas för dig igen.`]
        : proxy
          ? ['Återkalla', `Fullmakten till ${hsaId} är återkallad.`]
          : permit
          ? ['Återkalla', `Samtycket till ${hsaId} är återkallat.`]
          : ['Häv spärr', `Spärren av ${hsaId} är hävd.`];
    const action = active
      ? el(
          'button',
          {
            type: 'button',
            onclick: async () => {
              try {
                await fhirJson(`/Consent/${encodeURIComponent(consent.id)}`, {
                  method: 'PUT',
                  headers: { 'Content-Type': 'application/fhir+json' },
                  body: JSON.stringify({ resourceType: 'Consent', id: consent.id, status: 'inactive' }),
                });
                await refresh(doneText);
              } catch (error) {
                announce(errorText(error));
              }
            },
          },
          buttonText,
          el('span', { class: 'visually-hidden' }, ` för ${hsaId}`),
        )
      : '';
    return [
      sealed ? sealText(consent, config).kind : proxy ? 'Fullmakt' : permit ? 'Samtycke' : 'Spärr',
      `${hsaId}${level ? ` (${level})` : ''}`,
      formatDate(consent.dateTime || (consent.provision.period && consent.provision.period.start)),
      active ? 'Gäller' : 'Upphört',
      action,
    ];
  });
  return table('Dina samtycken, spärrar och fullmakter', ['Typ', 'Vem', 'Från', 'Status', 'Ändra'], rows);
}

/** The view "Samtycken och spärrar". `knownIds`: HSA-ids seen in the record, suggested. */
export async function showChoices(main, patientId, config, knownIds) {
  const holder = el('div', { class: 'consent-list' });
  const refresh = async (done) => {
    holder.replaceChildren(await consentTable(patientId, config, refresh));
    if (done) announce(done);
  };
  main.append(
    el('p', {}, 'Ge en vårdgivare eller vårdenhet rätt att ta del av dina uppgifter från andra vårdgivare, återkalla det, eller spärra uppgifter så att ingen annan ser dem.'),
    el('datalist', { id: 'kanda-hsa' }, [...knownIds].sort().map((id) => el('option', { value: id }))),
    el('h2', {}, 'Gällande och tidigare'),
    holder,
    el('h2', {}, 'Ändra'),
    choiceForm('Ge samtycke', 'permit', 'Ge samtycke', knownIds, patientId, config, refresh),
    choiceForm('Spärra uppgifter', 'deny', 'Spärra', knownIds, patientId, config, refresh),
    el('h2', {}, 'Din egen åtkomst'),
    sealForm(patientId, config, refresh, errorText),
    delayForm(patientId, config, refresh, errorText),
    el('h2', {}, 'Ombud'),
    el('p', {}, 'Ge en annan vuxen rätt att läsa din journal med sin egen inloggning, hela eller bara det du väljer. Ombudet kan inte ändra dina samtycken, spärrar eller fullmakter. Du ser deras läsningar under "Vem har läst", och kan återkalla fullmakten när du vill.'),
    proxyForm(patientId, config, refresh),
  );
  await refresh();
}

const ACTIONS = {
  everything: 'läste hela journalen',
  read: 'läste en uppgift',
  search: 'sökte i journalen',
  summary: 'läste sammanfattningen',
  'download-summary': 'laddade ner sammanfattningen',
  'download-record': 'laddade ner hela journalen',
};

function codingCode(codings, system) {
  const found = (codings || []).find((c) => c.system === system || !system);
  return found ? found.code : null;
}

function auditRow(event, config) {
  const requestor = (event.agent || []).find((a) => a.requestor) || {};
  const kind = codingCode(((requestor.role || [])[0] || {}).coding);
  const who = (requestor.who && requestor.who.identifier && requestor.who.identifier.value) || '';
  const units = (event.agent || [])
    .filter((a) => !a.requestor && a.who && a.who.identifier)
    .map((a) => a.who.identifier.value);
  const action = (event.subtype || []).map((s) => s.code).find((c) => ACTIONS[c]) ||
    (event.subtype || []).map((s) => s.code).pop() || event.action;
  const emergency = (event.extension || []).find((e) => e.url === config.extensions.emergencyAccess);
  const reason = emergency && (emergency.extension || []).find((e) => e.url === 'reason');
  const whoText = {
    citizen: 'Du själv',
    clinician: `Vårdpersonal ${who}`,
    proxy: 'Ditt ombud, för din räkning',
    representative: 'Din gode man eller förvaltare, för din räkning',
  }[kind] || `${kind || 'Okänd'} ${who}`;
  return {
    emergency: Boolean(emergency),
    cells: [
      formatDate(event.recorded),
      [whoText, units.length ? ` (${units.join(', ')})` : ''].join(''),
      ACTIONS[action] || action,
      event.outcome === '0' ? 'Tillåten' : 'Nekad',
      emergency
        ? el('strong', { class: 'flag' }, `Nödåtkomst${reason ? `: ${reason.valueString}` : ''}`)
        : '',
    ],
  };
}

/** The view "Vem har läst": the access log, newest first, emergency accesses flagged. */
export async function showAccessLog(main, patientId, config) {
  const bundle = await fhirJson(`/AuditEvent?patient=${encodeURIComponent(patientId)}`);
  const events = (bundle.entry || []).map((e) => e.resource).filter((r) => r && r.resourceType === 'AuditEvent');
  const rows = events.reverse().map((e) => auditRow(e, config));
  const emergencies = rows.filter((r) => r.emergency).length;
  main.append(
    el('p', {}, `Loggen visar varje gång någon har försökt läsa eller ändra dina uppgifter, den senaste först (${rows.length} händelser).`),
    emergencies
      ? el('p', { class: 'warn strong' }, `${emergencies} av dem var nödåtkomst: vårdpersonal läste utan ditt samtycke och angav ett skäl.`)
      : null,
    table('Vem har läst dina uppgifter', ['När', 'Vem', 'Vad', 'Utfall', 'Nödåtkomst'], rows.map((r) => r.cells), {
      class: 'data log',
    }),
  );
}
