import { memo } from 'react';

/** JSON.stringify(JSON.parse(text), null, 2), or null when the text is not a JSON object / array. */
export function prettyJson(text: string): string | null {
  const t = text.trimStart();
  if (!(t.startsWith('{') || t.startsWith('[')) || text.length > 262_144) return null;
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return null;
  }
}

const TOKEN = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;

/** Pretty JSON with light syntax colours (text may be cut short; tokens then stop early). */
export const JsonText = memo(function JsonText({ text }: { text: string }) {
  const out: React.ReactNode[] = [];
  let last = 0;
  let i = 0;
  for (const m of text.matchAll(TOKEN)) {
    const at = m.index ?? 0;
    if (at > last) out.push(text.slice(last, at));
    if (m[1] !== undefined) {
      if (m[2] !== undefined) {
        out.push(
          <span key={i++} className="text-[oklch(0.45_0.12_260)]">
            {m[1]}
          </span>,
          m[2],
        );
      } else {
        out.push(
          <span key={i++} className="text-[oklch(0.5_0.13_150)]">
            {m[1]}
          </span>,
        );
      }
    } else if (m[3] !== undefined) {
      out.push(
        <span key={i++} className="text-[oklch(0.5_0.16_310)]">
          {m[3]}
        </span>,
      );
    } else {
      out.push(
        <span key={i++} className="text-[oklch(0.55_0.15_45)]">
          {m[4]}
        </span>,
      );
    }
    last = at + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return <>{out}</>;
});
