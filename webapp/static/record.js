// The person's whole record from the public FHIR API (Patient/{id}/$everything), read as
// it streams in: each entry is counted for the source it came from (meta.source), so the
// page shows progress per source while the answer arrives; the source status comes last.

import { fhirFetch } from './smart.js';

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The record of patient `id`: { patient, resources, sources } where `sources` is the
 * source-status OperationOutcome read into { id, name, status, lastSync, answeredAt,
 * count, reason, coverage }. `onProgress(counts)` is called as entries arrive, counts by source id.
 */
export async function loadRecord(id, config, onProgress) {
  const answer = await fhirFetch(`/Patient/${encodeURIComponent(id)}/$everything`);
  const prefix = `"source":\\s*"${escapeRegExp(config.systems.source)}:([^#"]+)#`;
  const pattern = new RegExp(prefix, 'g');
  const counts = {};
  const decoder = new TextDecoder();
  const reader = answer.body.getReader();
  const parts = [];
  let text = '';
  let scanned = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const chunk = decoder.decode(value, { stream: true });
    parts.push(chunk);
    // Only the unscanned tail (with the start of a match the last chunk cut) is searched.
    text = text.slice(scanned) + chunk;
    scanned = 0;
    pattern.lastIndex = 0;
    let match;
    while ((match = pattern.exec(text)) !== null) {
      counts[match[1]] = (counts[match[1]] || 0) + 1;
      scanned = pattern.lastIndex;
    }
    scanned = Math.max(scanned, text.length - 200);
    onProgress({ ...counts });
  }
  parts.push(decoder.decode());
  const bundle = JSON.parse(parts.join(''));
  return readBundle(bundle, config);
}

function readBundle(bundle, config) {
  let patient = null;
  let sources = [];
  const resources = [];
  for (const entry of bundle.entry || []) {
    const resource = entry.resource;
    if (!resource) continue;
    if (resource.resourceType === 'OperationOutcome' && resource.id === 'source-status') {
      sources = readSourceStatus(resource, config);
    } else if (resource.resourceType === 'Patient') {
      patient = resource;
    } else if (resource.resourceType !== 'Provenance') {
      resources.push(resource);
    }
  }
  return { patient, resources, sources };
}

function readSourceStatus(outcome, config) {
  const sources = [];
  for (const issue of outcome.issue || []) {
    const status = (issue.extension || []).find((e) => e.url === config.extensions.sourceStatus);
    if (!status) continue;
    const field = (name) => (status.extension || []).find((e) => e.url === name);
    const value = (name) => {
      const found = field(name);
      if (!found) return null;
      const key = Object.keys(found).find((k) => k.startsWith('value'));
      return found[key];
    };
    sources.push({
      id: value('source'),
      name: (issue.details && issue.details.text) || value('source'),
      status: value('status'),
      lastSync: value('lastSync'),
      answeredAt: value('answeredAt'),
      count: value('resourceCount'),
      reason: value('reason'),
      coverage: readCoverage(issue, config),
    });
  }
  return sources;
}

// What a source shares (its source-coverage extension): { since, shares: [{ category,
// since }], withholds: [category] }, or null when the status does not say.
function readCoverage(issue, config) {
  const found = (issue.extension || []).find((e) => e.url === config.extensions.sourceCoverage);
  if (!found) return null;
  const parts = found.extension || [];
  const since = parts.find((p) => p.url === 'since');
  return {
    since: since ? since.valueDate : null,
    shares: parts
      .filter((p) => p.url === 'shares')
      .map((p) => {
        const part = (name) => (p.extension || []).find((e) => e.url === name) || {};
        return { category: part('category').valueCode, since: part('since').valueDate || null };
      }),
    withholds: parts.filter((p) => p.url === 'withholds').map((p) => p.valueCode),
  };
}

/** The source id of a resource (from meta.source), or null. */
export function sourceOf(resource, config) {
  const source = resource.meta && resource.meta.source;
  const prefix = `${config.systems.source}:`;
  if (!source || !source.startsWith(prefix)) return null;
  return source.slice(prefix.length).split('#')[0];
}

/** The code of the tag of `system` a resource carries, or null. */
export function tagOf(resource, system) {
  const tag = ((resource.meta && resource.meta.tag) || []).find((t) => t.system === system);
  return tag ? tag.code : null;
}
