// Checks real responses against docs/openapi.yaml, so the document cannot drift from the product.
//
// Every response a shared helper gets (request(), openSse(), rawRequest(), openWs()) goes through
// checkResponse(): the status must be documented for that path and method, the documented
// required response headers must be present (and match their schema), the content type must be
// one the response documents, and a JSON body must validate against its schema. A mismatch
// throws an OpenApiMismatch, which fails the test that got the response.
//
// Rules the document states with extensions (see its description):
//   x-other-paths    a path not under `paths`: 404 (and 431; OPTIONS is the preflight)
//   x-other-methods  a method a listed path does not document: 405 (and 431); HEAD is GET
//   x-http-layer     statuses the HTTP layer may answer before the gateway, with any body
//   x-multi-segment  a path parameter that may span several segments (/admin/{path})
//
// When E2E_OPENAPI_OBS names a file (run.mjs sets it), each distinct outcome is appended to it
// as one JSON line, and run.mjs turns them into the coverage report (test-results/openapi-*.md).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import Ajv2020 from 'ajv/dist/2020.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SPEC_FILE = path.resolve(HERE, '..', '..', '..', 'docs', 'openapi.yaml');
const DOC_ID = 'https://sse-gateway.invalid/openapi.json';
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** A response that does not match docs/openapi.yaml. */
export class OpenApiMismatch extends Error {
  constructor(message, { key, errors }) {
    super(message);
    this.name = 'OpenApiMismatch';
    this.key = key;
    this.errors = errors;
  }
}

const escPointer = (s) => String(s).replace(/~/g, '~0').replace(/\//g, '~1');
const unescPointer = (s) => s.replace(/~1/g, '/').replace(/~0/g, '~');

/** The node at a local JSON pointer (`#/a/b`). */
function at(doc, pointer) {
  if (!pointer.startsWith('#')) throw new Error(`only local $refs are supported, got ${pointer}`);
  let node = doc;
  for (const part of pointer.slice(1).split('/').filter((p) => p !== '').map(unescPointer)) {
    if (node === null || typeof node !== 'object' || !(part in node)) throw new Error(`unresolved $ref ${pointer}`);
    node = node[part];
  }
  return node;
}

/** Follows `$ref`s until a node without one; returns { node, pointer }. */
function deref(doc, node, pointer) {
  for (let i = 0; node && typeof node === 'object' && typeof node.$ref === 'string'; i++) {
    if (i > 20) throw new Error(`$ref loop at ${pointer}`);
    pointer = node.$ref;
    node = at(doc, pointer);
  }
  return { node, pointer };
}

/** The media type of a content-type header, lower case, without parameters. */
function mediaType(ct) {
  return String(ct ?? '').split(';')[0].trim().toLowerCase();
}

function mediaMatches(pattern, media) {
  if (pattern === '*/*') return media !== '';
  if (pattern.endsWith('/*')) return media.startsWith(pattern.slice(0, -1));
  return pattern.toLowerCase() === media;
}

const isJsonMedia = (m) => m === 'application/json' || m.endsWith('+json');

function formatAjvErrors(errors) {
  return (errors ?? []).slice(0, 6).map((e) => `${e.instancePath || '(root)'} ${e.message}${e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ''}`).join('; ');
}

/**
 * A validator for one OpenAPI document (parsed object). Exposed for tests; the suite uses the
 * shared instance of docs/openapi.yaml through checkResponse().
 */
export function createValidator(doc) {
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
  ajv.addSchema(doc, DOC_ID);
  const compiled = new Map();
  const schemaAt = (pointer) => {
    let v = compiled.get(pointer);
    if (!v) {
      v = ajv.compile({ $ref: `${DOC_ID}${pointer}` });
      compiled.set(pointer, v);
    }
    return v;
  };

  // Path templates, concrete paths first, then templates, multi-segment ones last.
  const templates = Object.entries(doc.paths ?? {}).map(([tpl, item]) => {
    const params = new Map();
    const base = `#/paths/${escPointer(tpl)}`;
    const lists = [[item.parameters, `${base}/parameters`], ...METHODS.map((m) => [item[m]?.parameters, `${base}/${m}/parameters`])];
    for (const [list, listPointer] of lists) {
      (list ?? []).forEach((p, i) => {
        const { node, pointer } = deref(doc, p, `${listPointer}/${i}`);
        if (node.in === 'path') params.set(node.name, { node, pointer });
      });
    }
    const names = [];
    let multi = false;
    const source = tpl.split(/(\{[^}]+\})/).map((part) => {
      const m = /^\{([^}]+)\}$/.exec(part);
      if (!m) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      names.push(m[1]);
      const def = params.get(m[1]);
      if (def?.node['x-multi-segment']) { multi = true; return '(.+)'; }
      return '([^/]+)';
    }).join('');
    const rank = names.length === 0 ? 0 : multi ? 2 : 1;
    return { tpl, item, re: new RegExp(`^${source}$`), names, params, rank };
  }).sort((a, b) => a.rank - b.rank || b.tpl.length - a.tpl.length);

  /** The path template a request path (no query) resolves to, or null for "any other path". */
  function matchPath(p) {
    for (const t of templates) {
      const m = t.re.exec(p);
      if (!m) continue;
      let ok = true;
      t.names.forEach((name, i) => {
        const def = t.params.get(name);
        // only multi-segment parameters select the route by their schema (/admin/{path} is not
        // /admin/api/...); a single-segment one is the route whatever its value (a bad topic is
        // that route's 400)
        if (def?.node['x-multi-segment'] && def.node.schema) {
          const { pointer } = def;
          const valid = schemaAt(`${pointer}/schema`);
          if (!valid(m[i + 1])) ok = false;
        }
      });
      if (ok) return t;
    }
    return null;
  }

  const other = doc['x-other-paths'] ?? {};
  const otherMethods = doc['x-other-methods'] ?? {};
  const httpLayer = new Set((doc['x-http-layer']?.statuses ?? []).map(Number));

  /**
   * Which documented responses apply: { label, responses, base } where responses maps status →
   * response object and base is its JSON pointer prefix.
   */
  function operationFor(method, p) {
    const t = matchPath(p);
    const m = method.toLowerCase();
    if (!t) {
      if (m === 'options' && other.options) {
        return { method: 'OPTIONS', path: '(any other path)', responses: other.options, base: '#/x-other-paths/options' };
      }
      return { method: '*', path: '(any other path)', responses: other.responses ?? {}, base: '#/x-other-paths/responses' };
    }
    const opMethod = m === 'head' && !t.item.head ? 'get' : m;
    const op = t.item[opMethod];
    if (op) {
      return { method: opMethod.toUpperCase(), path: t.tpl, responses: op.responses ?? {}, base: `#/paths/${escPointer(t.tpl)}/${opMethod}/responses` };
    }
    return { method: '*', path: '(other methods on a listed path)', responses: otherMethods.responses ?? {}, base: '#/x-other-methods/responses' };
  }

  /**
   * Checks one response. r: { method, target (path, may carry ?query), status, headers (lower-case
   * names), body (Buffer|string, optional), bodyComplete (false for a stream still open),
   * httpLayer (true for raw-socket requests: a non-JSON x-http-layer status is then accepted) }.
   * Returns { key, errors: string[], layer? }.
   */
  function check(r) {
    const method = String(r.method ?? 'GET').toUpperCase();
    const rawTarget = String(r.target ?? '/');
    const p = rawTarget.split('?')[0] || '/';
    const status = Number(r.status);
    const headers = r.headers ?? {};
    const media = mediaType(headers['content-type']);
    const op = operationFor(method, p);
    const key = `${op.method} ${op.path} ${status}`;
    const errors = [];
    if (r.httpLayer && httpLayer.has(status) && !isJsonMedia(media)) {
      // refused before the gateway (a request the HTTP layer would not hand over): any body.
      // Only raw-socket requests (r.httpLayer) can be that malformed: a well-formed request that
      // gets a non-JSON error is a mismatch.
      return { key: `* (http layer) ${status}`, errors };
    }
    const entry = op.responses[String(status)];
    if (!entry) {
      const documented = Object.keys(op.responses).sort().join(', ') || 'none';
      errors.push(`status ${status} is not documented for ${op.method} ${op.path} (documented: ${documented})`);
      return { key, errors, undocumented: true };
    }
    const { node: resp, pointer: respPointer } = deref(doc, entry, `${op.base}/${status}`);
    // headers
    for (const [name, h0] of Object.entries(resp.headers ?? {})) {
      const { node: h, pointer: hp } = deref(doc, h0, `${respPointer}/headers/${escPointer(name)}`);
      const lname = name.toLowerCase();
      const raw = headers[lname];
      const value = Array.isArray(raw) ? raw.join(', ') : raw;
      if (value === undefined) {
        if (h.required) errors.push(`header ${lname} is required but missing`);
        continue;
      }
      if (h.schema) {
        const valid = schemaAt(`${hp}/schema`);
        if (!valid(String(value))) errors.push(`header ${lname}: ${JSON.stringify(String(value).slice(0, 120))} ${formatAjvErrors(valid.errors)}`);
      }
    }
    // content
    const content = resp.content;
    const bodyLen = r.body === undefined ? 0 : (Buffer.isBuffer(r.body) ? r.body.length : Buffer.byteLength(String(r.body)));
    if (!content || Object.keys(content).length === 0) {
      if (method !== 'HEAD' && r.bodyComplete !== false && bodyLen > 0 && status !== 101) {
        errors.push(`no body is documented, got ${bodyLen} bytes (${media || 'no content-type'})`);
      }
    } else {
      const mediaKey = Object.keys(content).find((k) => mediaMatches(k, media));
      if (mediaKey === undefined) {
        errors.push(`content-type ${JSON.stringify(headers['content-type'] ?? null)} is not documented (documented: ${Object.keys(content).join(', ')})`);
      } else if (method !== 'HEAD' && r.bodyComplete !== false && r.body !== undefined && content[mediaKey].schema) {
        const text = Buffer.isBuffer(r.body) ? r.body.toString('utf8') : String(r.body);
        const schemaPointer = `${respPointer}/content/${escPointer(mediaKey)}/schema`;
        let value = text;
        let parsed = true;
        if (isJsonMedia(media)) {
          try { value = JSON.parse(text); } catch { parsed = false; errors.push(`body is not JSON: ${JSON.stringify(text.slice(0, 120))}`); }
        }
        if (parsed) {
          const valid = schemaAt(schemaPointer);
          if (!valid(value)) errors.push(`body does not match ${deref(doc, content[mediaKey].schema, '').pointer || schemaPointer}: ${formatAjvErrors(valid.errors)}; body ${JSON.stringify(text.slice(0, 200))}`);
        }
      }
    }
    return { key, errors };
  }

  /** Every documented (method, path, status), in document order. */
  function documented() {
    const rows = [];
    for (const [tpl, item] of Object.entries(doc.paths ?? {})) {
      for (const m of METHODS) {
        if (!item[m]) continue;
        for (const s of Object.keys(item[m].responses ?? {})) rows.push({ method: m.toUpperCase(), path: tpl, status: Number(s) });
      }
    }
    for (const s of Object.keys(other.responses ?? {})) rows.push({ method: '*', path: '(any other path)', status: Number(s) });
    for (const s of Object.keys(other.options ?? {})) rows.push({ method: 'OPTIONS', path: '(any other path)', status: Number(s) });
    for (const s of Object.keys(otherMethods.responses ?? {})) rows.push({ method: '*', path: '(other methods on a listed path)', status: Number(s) });
    for (const s of httpLayer) rows.push({ method: '*', path: '(http layer)', status: s });
    return rows;
  }

  return { check, documented, matchPath, operationFor };
}

let shared = null;

/** The validator of docs/openapi.yaml (parsed once per process). */
export function specValidator() {
  if (!shared) shared = createValidator(YAML.parse(fs.readFileSync(SPEC_FILE, 'utf8')));
  return shared;
}

// ---- observations for the coverage report ------------------------------------------------------

const seen = new Set();

/** Appends one distinct outcome to $E2E_OPENAPI_OBS (a JSON line). */
export function recordObservation(key, errors = [], extra = {}) {
  const file = process.env.E2E_OPENAPI_OBS;
  if (!file) return;
  const line = JSON.stringify({ key, ...(errors.length ? { errors } : {}), ...extra });
  if (seen.has(line)) return;
  seen.add(line);
  try { fs.appendFileSync(file, `${line}\n`); } catch { /* the report will miss it; the check itself still ran */ }
}

/**
 * Checks a response against docs/openapi.yaml, records the outcome, and throws an OpenApiMismatch
 * when it does not match. r: see createValidator().check.
 */
export function checkResponse(r) {
  const result = specValidator().check(r);
  recordObservation(result.key, result.errors, result.undocumented ? { undocumented: true } : {});
  if (result.errors.length) {
    const where = `${String(r.method).toUpperCase()} ${String(r.target).slice(0, 120)} → ${r.status}`;
    throw new OpenApiMismatch(`response does not match docs/openapi.yaml: ${where}: ${result.errors.join('; ')}`, result);
  }
  return result;
}

/** Records a response whose status was seen without headers or body (a WebSocket's 101). */
export function observeStatus(method, target, status) {
  const v = specValidator();
  const op = v.operationFor(method, String(target).split('?')[0]);
  if (!op.responses[String(status)]) {
    const result = { key: `${op.method} ${op.path} ${status}`, errors: [`status ${status} is not documented for ${op.method} ${op.path}`], undocumented: true };
    recordObservation(result.key, result.errors, { undocumented: true });
    throw new OpenApiMismatch(`response does not match docs/openapi.yaml: ${method} ${target} → ${status}: ${result.errors[0]}`, result);
  }
  recordObservation(`${op.method} ${op.path} ${status}`);
}

// ---- the coverage report ------------------------------------------------------------------------

/** Reads the JSON lines recordObservation() appended. */
export function readObservations(file) {
  let text = '';
  try { text = fs.readFileSync(file, 'utf8'); } catch { return []; }
  return text.split('\n').filter(Boolean).map((l) => { try { return JSON.parse(l); } catch { return null; } }).filter(Boolean);
}

const rowKey = (r) => `${r.method} ${r.path} ${r.status}`;

/**
 * One run's coverage: every documented (method, path, status) and whether the run observed it,
 * plus every response that did not match (an undocumented status, a bad header or body).
 * clean(text) makes messages stable between runs (random topic names).
 */
export function coverage(observations, { clean = (s) => s } = {}) {
  const v = specValidator();
  const observed = new Set(observations.map((o) => o.key));
  const responses = v.documented().map((r) => ({ ...r, observed: observed.has(rowKey(r)) }));
  const byKey = new Map();
  for (const o of observations) {
    if (!o.errors?.length) continue;
    const m = byKey.get(o.key) ?? { key: o.key, ...(o.undocumented ? { undocumented: true } : {}), errors: new Set() };
    for (const e of o.errors) m.errors.add(clean(e));
    byKey.set(o.key, m);
  }
  const mismatches = [...byKey.values()]
    .map((m) => ({ ...m, errors: [...m.errors].sort().slice(0, 5) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const totals = {
    documented: responses.length,
    observed: responses.filter((r) => r.observed).length,
    undocumented: mismatches.filter((m) => m.undocumented).length,
    mismatched: mismatches.filter((m) => !m.undocumented).length,
  };
  return { totals, mismatches, responses };
}

const mdEsc = (s) => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The Markdown of one run's coverage. */
export function coverageMarkdown(label, cov) {
  const t = cov.totals;
  const md = [
    `# OpenAPI coverage — ${label}`,
    '',
    `Every response the end-to-end suite got was checked against [docs/openapi.yaml](../docs/openapi.yaml). ` +
      `**${t.observed} of ${t.documented}** documented responses observed; ` +
      `${t.undocumented} undocumented status(es), ${t.mismatched} response(s) not matching their documentation.`,
    '',
  ];
  for (const m of cov.mismatches) md.push(`- ${m.undocumented ? 'UNDOCUMENTED' : 'MISMATCH'} \`${m.key}\`: ${mdEsc(m.errors.join('; ')).slice(0, 600)}`);
  if (cov.mismatches.length) md.push('');
  md.push('| method | path | status | observed |', '|---|---|---|---|');
  for (const r of cov.responses) md.push(`| ${r.method} | \`${r.path}\` | ${r.status} | ${r.observed ? 'yes' : '—'} |`);
  md.push('');
  return md.join('\n');
}

/**
 * Merges the per-run reports (`openapi-<label>.json`) into one table: which runs observed each
 * documented response. Returns { json, md }.
 */
export function mergeCoverage(reports) {
  const labels = reports.map((r) => r.label).sort();
  const byLabel = new Map(reports.map((r) => [r.label, r]));
  const rows = specValidator().documented().map((r) => {
    const observed_by = labels.filter((l) => byLabel.get(l).responses.some((x) => rowKey(x) === rowKey(r) && x.observed));
    return { ...r, observed_by };
  });
  const json = {
    suite: 'openapi',
    spec: 'docs/openapi.yaml',
    runs: labels.map((l) => ({ label: l, target: byLabel.get(l).target, ...byLabel.get(l).totals })),
    totals: { documented: rows.length, observed: rows.filter((r) => r.observed_by.length).length },
    responses: rows,
  };
  const md = [
    '# OpenAPI coverage — all runs',
    '',
    `Documented responses of [docs/openapi.yaml](../docs/openapi.yaml) observed by the end-to-end runs whose ` +
      `\`openapi-<label>.json\` is in test-results/: **${json.totals.observed} of ${json.totals.documented}** by at least one run.`,
    '',
    '| run | target | observed | undocumented | mismatched |',
    '|---|---|---|---|---|',
    ...json.runs.map((r) => `| [${r.label}](openapi-${r.label}.md) | ${r.target} | ${r.observed} of ${r.documented} | ${r.undocumented} | ${r.mismatched} |`),
    '',
    `| method | path | status | ${labels.join(' | ')} |`,
    `|---|---|---|${labels.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.method} | \`${r.path}\` | ${r.status} | ${labels.map((l) => (r.observed_by.includes(l) ? 'yes' : '—')).join(' | ')} |`),
    '',
  ].join('\n');
  return { json, md };
}
