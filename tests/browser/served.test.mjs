// The gateway serves the built admin UI (admin/dist) at /admin: index.html, its assets, and
// index.html again for client-side routes (deep links such as /admin/connections?topic=x).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { REPO, RUN, config } from './lib.mjs';

const DIST_INDEX = path.join(REPO, 'admin', 'dist', 'index.html');

async function get(p) {
  const r = await fetch(`${config.baseUrl}${p}`, { redirect: 'manual' });
  return { status: r.status, type: r.headers.get('content-type') ?? '', text: await r.text() };
}

function assetPaths(html) {
  return [...html.matchAll(/(?:src|href)="(\/admin\/assets\/[^"]+)"/g)].map((m) => m[1]);
}

test('/admin and /admin/ serve the built index.html', async () => {
  const built = fs.readFileSync(DIST_INDEX, 'utf8');
  assert.ok(assetPaths(built).length >= 2, 'admin/dist/index.html references its JS and CSS under /admin/assets/ (is admin/dist built?)');
  for (const p of ['/admin', '/admin/']) {
    const r = await get(p);
    assert.equal(r.status, 200, `${p} status`);
    assert.match(r.type, /^text\/html/, `${p} content-type`);
    assert.equal(r.text, built, `${p} is not the current admin/dist/index.html (a stale or placeholder admin build is being served)`);
  }
});

test('/admin/assets/* serve the JS and CSS with their content types', async () => {
  const html = fs.readFileSync(DIST_INDEX, 'utf8');
  for (const p of assetPaths(html)) {
    const r = await get(p);
    assert.equal(r.status, 200, `${p} status`);
    if (p.endsWith('.js')) assert.match(r.type, /javascript/, `${p} content-type`);
    if (p.endsWith('.css')) assert.match(r.type, /^text\/css/, `${p} content-type`);
    const local = fs.readFileSync(path.join(REPO, 'admin', 'dist', p.slice('/admin/'.length)), 'utf8');
    assert.equal(r.text.length, local.length, `${p} differs from admin/dist`);
  }
});

test('client-side routes serve index.html; a missing asset is a 404', async () => {
  const built = fs.readFileSync(DIST_INDEX, 'utf8');
  for (const p of ['/admin/topics', '/admin/connections?topic=orders', '/admin/tail?topic=user:42']) {
    const r = await get(p);
    assert.equal(r.status, 200, `${p} status`);
    assert.equal(r.text, built, `${p} should serve index.html (single-page app route)`);
  }
  const missing = await get(`/admin/assets/missing-${RUN}.js`);
  assert.equal(missing.status, 404, 'a missing asset is a 404, not index.html');
});
