import { useCallback, useEffect, useRef, useState } from 'react';

import { useErrorHandler } from '@/lib/session';

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
  updatedAt: number | null;
  reload: () => void;
}

/**
 * Runs `load` now and whenever `deps` change; with `everyMs`, again that long after each
 * answer while the page is visible. The last good data stays on screen when a refresh fails.
 */
export function useLoader<T>(
  load: (signal: AbortSignal) => Promise<T>,
  deps: unknown[],
  { everyMs = null, keep = false }: { everyMs?: number | null; keep?: boolean } = {},
): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [updatedAt, setUpdatedAt] = useState<number | null>(null);
  const [nonce, setNonce] = useState(0);
  const handle = useErrorHandler();
  const loadRef = useRef(load);
  loadRef.current = load;

  // New query (deps changed): forget the old data, unless asked to keep it on screen (dimmed)
  // until the new answer arrives.
  useEffect(() => {
    if (!keep) setData(null);
    setError(null);
  }, deps);

  useEffect(() => {
    const ctrl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let alive = true;
    const tick = async () => {
      if (!alive) return;
      if (document.visibilityState === 'hidden' && everyMs) {
        timer = setTimeout(tick, everyMs);
        return;
      }
      setLoading(true);
      try {
        const d = await loadRef.current(ctrl.signal);
        if (!alive) return;
        setData(d);
        setError(null);
        setUpdatedAt(Date.now());
      } catch (e) {
        if (!alive) return;
        const msg = handle(e);
        if (msg) setError(msg);
      } finally {
        if (alive) setLoading(false);
      }
      if (alive && everyMs) timer = setTimeout(tick, everyMs);
    };
    void tick();
    return () => {
      alive = false;
      ctrl.abort();
      clearTimeout(timer);
    };
  }, [...deps, everyMs, nonce, handle]);

  const reload = useCallback(() => setNonce((n) => n + 1), []);
  return { data, error, loading, updatedAt, reload };
}

/** Re-renders every `ms` (for "12s ago" labels). */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}
