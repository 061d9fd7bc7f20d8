// A SMART app's part of a standalone launch, done by fhir-kit-client: it discovers the
// gateway's OAuth endpoints, sends the person to log in, exchanges the code (PKCE S256) and
// reads with the token it got. The person's part (the login and consent pages) is done by
// whoever runs this: it prints {"authorize": URL} and reads the redirect it was sent to on
// stdin. Usage: node smart_login.mjs FHIR_BASE CLIENT_ID REDIRECT_URI SCOPE
import { createHash, randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { Client } from 'fhir-kit-client';

const [fhirBase, clientId, redirectUri, scope] = process.argv.slice(2);

const discovery = new Client({ baseUrl: fhirBase });
const { authorizeUrl, tokenUrl } = await discovery.smartAuthMetadata();
if (!authorizeUrl || !tokenUrl) {
  throw new Error('fhir-kit-client found no authorize or token endpoint');
}

const verifier = randomBytes(48).toString('base64url');
const state = randomBytes(12).toString('base64url');
const authorize = new URL(authorizeUrl);
authorize.search = new URLSearchParams({
  response_type: 'code',
  client_id: clientId,
  redirect_uri: redirectUri,
  scope,
  state,
  aud: fhirBase,
  code_challenge: createHash('sha256').update(verifier).digest('base64url'),
  code_challenge_method: 'S256',
}).toString();
console.log(JSON.stringify({ authorize: authorize.href }));

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const callback = new URL((await lines.next()).value);
if (callback.searchParams.get('state') !== state) {
  throw new Error('the state came back changed');
}
const answer = await fetch(tokenUrl, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({
    grant_type: 'authorization_code',
    code: callback.searchParams.get('code'),
    redirect_uri: redirectUri,
    client_id: clientId,
    code_verifier: verifier,
  }),
});
const token = await answer.json();
if (!answer.ok) {
  throw new Error(`the token endpoint answered ${answer.status}: ${JSON.stringify(token)}`);
}

const client = new Client({ baseUrl: fhirBase, bearerToken: token.access_token });
const patient = await client.read({ resourceType: 'Patient', id: token.patient });
const observations = await client.search({
  resourceType: 'Observation',
  searchParams: { patient: token.patient, _count: 5 },
});
console.log(JSON.stringify({
  scope: token.scope,
  refresh: Boolean(token.refresh_token),
  patient,
  observations: (observations.entry ?? []).map((entry) => entry.resource.resourceType),
}));
