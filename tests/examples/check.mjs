// What the examples matrix checks: the shared sample events (examples/README.md) and the
// comparison of one subscriber's output with what each publisher sent. No I/O here.

/** Event i (1-based) of the shared sample set: what every example publisher sends. */
export function sampleEvent(i) {
  switch ((i - 1) % 5) {
    case 0: return { event: 'note', data: `plain text #${i}` };
    case 1: return { event: 'multi-line', data: `line 1 of #${i}\nline 2\nline 3` };
    case 2: return { event: 'multi-line', data: `crlf #${i}\r\nsecond line\r\n` };
    case 3: return { event: 'unicode', data: `unicode #${i}: 你好，世界 🚀 café ✓` };
    default: return { event: null, data: `{"n":${i},"ok":true}` };
  }
}

/** Compare what one subscriber printed against what each publisher sent. */
export function checkSubscriber(lines, publishers, topics, count) {
  const cells = {};
  const extras = [];
  const got = new Map(); // `${publisher}\n${topic}` -> events in arrival order
  for (const ev of lines) {
    const pub = publishers.find((p) => typeof ev.id === 'string' && ev.id.startsWith(`${p}-`));
    if (!pub || !topics.includes(ev.topic)) {
      extras.push(ev);
      continue;
    }
    const key = `${pub}\n${ev.topic}`;
    if (!got.has(key)) got.set(key, []);
    got.get(key).push(ev);
  }
  for (const pub of publishers) {
    const problems = [];
    for (const [ti, topic] of topics.entries()) {
      const seq = got.get(`${pub}\n${topic}`) ?? [];
      const label = `topic ${ti + 1}`;
      const ids = seq.map((e) => e.id);
      const want = Array.from({ length: count }, (_, k) => `${pub}-${k + 1}`);
      const missing = want.filter((id) => !ids.includes(id));
      const dup = ids.filter((id, k) => ids.indexOf(id) !== k);
      if (missing.length) problems.push(`${label}: ${missing.length} of ${count} missing (first ${missing[0]})`);
      if (dup.length) problems.push(`${label}: ${dup.length} duplicate(s) (first ${dup[0]})`);
      if (!missing.length && !dup.length && ids.some((id, k) => id !== want[k])) {
        const k = ids.findIndex((id, j) => id !== want[j]);
        problems.push(`${label}: out of order at position ${k + 1} (${ids[k]} where ${want[k]} was due)`);
      }
      for (const e of seq) {
        const n = Number(e.id.slice(pub.length + 1));
        if (!Number.isInteger(n) || n < 1 || n > count) continue;
        const exp = sampleEvent(n);
        if (e.data !== exp.data) {
          problems.push(`${label}: ${e.id} data ${JSON.stringify(e.data)} != ${JSON.stringify(exp.data)}`);
          break;
        }
        if (e.event !== exp.event) {
          problems.push(`${label}: ${e.id} event ${JSON.stringify(e.event)} != ${JSON.stringify(exp.event)}`);
          break;
        }
      }
    }
    cells[pub] = problems;
  }
  return { cells, extras };
}

/** Parse a subscriber's stdout: one JSON object per line. */
export function parseLines(stdout) {
  const events = [];
  const bad = [];
  for (const line of stdout.split('\n')) {
    if (!line.trim()) continue;
    try {
      const ev = JSON.parse(line);
      const keys = Object.keys(ev).sort().join(',');
      if (keys !== 'data,event,id,topic') bad.push(`fields ${keys}`);
      events.push(ev);
    } catch {
      bad.push(line.slice(0, 80));
    }
  }
  return { events, bad };
}
