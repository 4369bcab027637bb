// A tiny history-API router: /admin/topics, /admin/connections?topic=, /admin/tail?topic=.
// The gateway serves index.html for any /admin/<path> without a file extension.
import { useCallback, useEffect, useState } from 'react';

export type Tab = 'topics' | 'connections' | 'tail';
export const TABS: Tab[] = ['topics', 'connections', 'tail'];

export interface Location {
  tab: Tab;
  topic: string;
}

const BASE = import.meta.env.BASE_URL; // "/admin/"

function read(): Location {
  let rest = window.location.pathname.startsWith(BASE) ? window.location.pathname.slice(BASE.length) : '';
  rest = rest.replace(/\/+$/, '');
  const tab = (TABS as string[]).includes(rest) ? (rest as Tab) : 'topics';
  const topic = new URLSearchParams(window.location.search).get('topic') ?? '';
  return { tab, topic };
}

export function href(loc: Location): string {
  const qs = loc.topic ? `?${new URLSearchParams({ topic: loc.topic })}` : '';
  return `${BASE}${loc.tab}${qs}`;
}

export function useLocation(): [Location, (loc: Location, replace?: boolean) => void] {
  const [loc, setLoc] = useState<Location>(read);
  useEffect(() => {
    const on = () => setLoc(read());
    window.addEventListener('popstate', on);
    return () => window.removeEventListener('popstate', on);
  }, []);
  const navigate = useCallback((next: Location, replace = false) => {
    const url = href(next);
    if (url !== window.location.pathname + window.location.search) {
      if (replace) window.history.replaceState(null, '', url);
      else window.history.pushState(null, '', url);
    }
    setLoc(next);
  }, []);
  return [loc, navigate];
}
