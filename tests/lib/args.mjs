// The one command-line parser of the Node runners (tests/{e2e,examples,browser,docs}/run.mjs and
// tests/native/run.mjs). Built on node:util's parseArgs: `--name value` and `--name=value` both
// work, an unknown option or a missing value is an error naming the runner, and a repeatable
// option collects its values in order. Node 20+, no packages.
//
//   const args = parseArgs(process.argv.slice(2), {
//     runner: 'tests/e2e/run.mjs',          // named in every error
//     values: ['base-url', 'label'],        // options that take a value
//     flags: ['chaos'],                     // options that take none (true when given)
//     repeatable: ['var'],                  // options that take a value and may be repeated
//   });
//   args['base-url']  // string or undefined;  args.chaos  // true or undefined;  args.var // string[] or undefined
//
//   settings(args.var)  // --var KEY:VALUE (or KEY=VALUE) as { KEY: 'VALUE' }

import { parseArgs as nodeParseArgs } from 'node:util';

/**
 * Parse argv by spec. Options are returned under their own names (`args['base-url']`); absent
 * ones are undefined. Throws an Error that names spec.runner on anything not in the spec.
 */
export function parseArgs(argv, { runner, values = [], flags = [], repeatable = [] }) {
  const options = {};
  for (const name of values) options[name] = { type: 'string' };
  for (const name of flags) options[name] = { type: 'boolean' };
  for (const name of repeatable) options[name] = { type: 'string', multiple: true };
  let parsed;
  try {
    parsed = nodeParseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new Error(`${runner}: ${e.message.split('\n')[0]} (options: ${Object.keys(options).map((n) => `--${n}`).join(' ')}; see the top of ${runner})`);
  }
  const out = {};
  for (const [name, value] of Object.entries(parsed)) if (value !== undefined) out[name] = value;
  return out;
}

/** `KEY:VALUE` (or `KEY=VALUE`) settings, as given to a repeatable --var, as an object. */
export function settings(list = []) {
  const out = {};
  for (const item of list) {
    const m = /^([A-Z0-9_]+)[:=](.*)$/.exec(item);
    if (!m) throw new Error(`--var needs KEY:VALUE, got ${item}`);
    out[m[1]] = m[2];
  }
  return out;
}
