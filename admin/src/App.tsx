import { useCallback, useMemo, useRef, useState } from 'react';
import { LogOut, PlugZap, Radio, Rss } from 'lucide-react';

import { Logo } from '@/components/logo';
import { Button } from '@/components/ui/button';
import { Tabs, TabsContent, TabsList, TabsTrigger } from '@/components/ui/tabs';
import { clearKey, loadKey, saveKey } from '@/lib/api';
import { useLocation, type Tab } from '@/lib/router';
import { SessionContext, type Session } from '@/lib/session';
import { ConnectionsView } from '@/views/connections';
import { Login } from '@/views/login';
import { TailView } from '@/views/tail';
import { TopicsView } from '@/views/topics';

const EXPIRED = 'Your API key was rejected by the gateway (401 unauthorized): it may have been removed from API_KEYS. Sign in again with a current key.';

export default function App() {
  const [key, setKey] = useState<string | null>(loadKey);
  const [notice, setNotice] = useState<string | null>(null);

  const expire = useCallback(() => {
    clearKey();
    setKey(null);
    setNotice(EXPIRED);
  }, []);
  const login = useCallback((k: string) => {
    saveKey(k);
    setNotice(null);
    setKey(k);
  }, []);
  const logout = useCallback(() => {
    clearKey();
    setNotice('You are signed out. The API key was removed from this browser.');
    setKey(null);
  }, []);

  const session = useMemo<Session | null>(() => (key ? { key, expire } : null), [key, expire]);
  if (!session) return <Login notice={notice} onLogin={login} />;
  return (
    <SessionContext.Provider value={session}>
      <Shell onLogout={logout} />
    </SessionContext.Provider>
  );
}

function Shell({ onLogout }: { onLogout: () => void }) {
  const [loc, navigate] = useLocation();
  // The topic each tab was last showing, so switching tabs back and forth keeps it.
  const last = useRef<Record<Tab, string>>({ topics: '', connections: '', tail: '' });
  last.current[loc.tab] = loc.topic;
  const go = useCallback((tab: Tab, topic?: string) => navigate({ tab, topic: topic ?? last.current[tab] }), [navigate]);

  return (
    <div className="min-h-svh bg-muted/40">
      <header className="sticky top-0 z-10 border-b bg-background/95 backdrop-blur">
        <div className="mx-auto flex h-14 max-w-7xl items-center gap-3 px-4 sm:px-6">
          <Logo className="size-7 text-primary" />
          <div className="flex items-baseline gap-2">
            <span className="font-semibold tracking-tight">SSE Gateway</span>
            <span className="text-sm text-muted-foreground">Admin</span>
          </div>
          <span className="ml-2 hidden rounded-md border bg-muted/50 px-2 py-0.5 font-mono text-xs text-muted-foreground md:inline">{window.location.host}</span>
          <div className="ml-auto">
            <Button variant="ghost" size="sm" onClick={onLogout}>
              <LogOut />
              Sign out
            </Button>
          </div>
        </div>
      </header>
      <main className="mx-auto max-w-7xl px-4 py-6 sm:px-6">
        <Tabs value={loc.tab} onValueChange={(v) => go(v as Tab)} className="gap-5">
          <TabsList>
            <TabsTrigger value="topics" className="px-4">
              <Rss />
              Topics
            </TabsTrigger>
            <TabsTrigger value="connections" className="px-4">
              <PlugZap />
              Connections
            </TabsTrigger>
            <TabsTrigger value="tail" className="px-4">
              <Radio />
              Tail Events
            </TabsTrigger>
          </TabsList>
          <TabsContent value="topics">
            <TopicsView onConnections={(t) => go('connections', t)} onTail={(t) => go('tail', t)} />
          </TabsContent>
          <TabsContent value="connections">
            <ConnectionsView topic={loc.tab === 'connections' ? loc.topic : ''} onTopic={(t) => navigate({ tab: 'connections', topic: t })} />
          </TabsContent>
          <TabsContent value="tail">
            <TailView topic={loc.tab === 'tail' ? loc.topic : ''} onTopic={(t) => navigate({ tab: 'tail', topic: t })} />
          </TabsContent>
        </Tabs>
      </main>
    </div>
  );
}
