// Runs node:test files one at a time and collects one result per top-level test, printing
// `ok` / `FAIL` / `SKIP` lines as they come. Shared by tests/e2e/run.mjs and tests/browser/run.mjs.

import path from 'node:path';
import { run } from 'node:test';

import { REPO } from './gateways.mjs';

/**
 * @param {string[]} files test files
 * @param {{ timeoutMs: number, reason: (error: any) => string }} opts `reason` turns a failed
 *   test's error into the one-line reason recorded for it
 * @returns {Promise<{ results: {name: string, file: string, status: string, reason?: string}[], durationS: number }>}
 */
export async function runTestFiles(files, { timeoutMs, reason }) {
  const results = [];
  const started = Date.now();
  const stream = run({ files, concurrency: 1, forceExit: true, timeout: timeoutMs });
  for await (const ev of stream) {
    if (ev.type === 'test:stderr' || ev.type === 'test:stdout') {
      process.stderr.write(`  [${path.basename(ev.data.file ?? '')}] ${ev.data.message}`);
      continue;
    }
    if (ev.type !== 'test:pass' && ev.type !== 'test:fail') continue;
    const d = ev.data;
    if (d.nesting !== 0 || d.details?.type === 'suite') continue;
    const file = d.file ? path.relative(REPO, d.file) : '';
    // a whole-file failure (crash at load) is reported under the file's path
    const name = d.name === d.file ? `(file) ${file}` : d.name;
    let status;
    let why;
    if (ev.type === 'test:fail') {
      status = 'failed';
      why = reason(d.details?.error);
    } else if (d.skip !== undefined || d.todo !== undefined) {
      status = 'skipped';
      const r = d.skip ?? d.todo;
      why = typeof r === 'string' && r ? r : 'skipped';
    } else {
      status = 'passed';
    }
    const mark = status === 'passed' ? 'ok  ' : status === 'failed' ? 'FAIL' : 'SKIP';
    console.log(`${mark} ${name}${why ? `  — ${why}` : ''}`);
    results.push({ name, file, status, ...(why ? { reason: why } : {}) });
  }
  return { results, durationS: Math.round((Date.now() - started) / 1000) };
}
