import { createContext, useCallback, useContext } from 'react';

import { ApiError } from '@/lib/api';

export interface Session {
  key: string;
  /** The gateway answered 401: forget the key and go back to the login screen. */
  expire: () => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside SessionContext');
  return s;
}

/** Turns an error into a message; a 401 ends the session instead. */
export function useErrorHandler() {
  const { expire } = useSession();
  return useCallback(
    (e: unknown): string | null => {
      if (e instanceof DOMException && e.name === 'AbortError') return null;
      if (e instanceof ApiError && e.unauthorized) {
        expire();
        return null;
      }
      if (e instanceof ApiError) return `${e.message} (${e.status} ${e.code})`;
      return e instanceof Error ? e.message : String(e);
    },
    [expire],
  );
}
