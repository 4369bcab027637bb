import { useMemo, useState } from 'react';
import { Activity, Cable, Pause, Play, Radio, RefreshCw, Search, X } from 'lucide-react';

import { CommandLine, EmptyState, ErrorState, InlineAlert, LoadingState } from '@/components/states';
import { Badge } from '@/components/ui/badge';
import { Button } from '@/components/ui/button';
import { Card, CardAction, CardContent, CardDescription, CardHeader, CardTitle } from '@/components/ui/card';
import { Input } from '@/components/ui/input';
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from '@/components/ui/table';
import { fetchAllTopics, fetchStats, type GatewayStats, type Topic } from '@/lib/api';
import { duration, num } from '@/lib/format';
import { useLoader, useNow } from '@/lib/hooks';
import { useSession } from '@/lib/session';

export const REFRESH_MS = 2000;
const MAX_ROWS = 500;

export function TopicsView({ onConnections, onTail }: { onConnections: (topic: string) => void; onTail: (topic: string) => void }) {
  const { key } = useSession();
  const [filter, setFilter] = useState('');
  const [auto, setAuto] = useState(true);
  const { data, error, loading, updatedAt, reload } = useLoader(
    async (signal) => {
      // The counts refresh with the topics; a gateway without /admin/api/stats still lists topics.
      const [list, counts] = await Promise.all([fetchAllTopics(key, signal), fetchStats(key, signal).catch(() => null)]);
      return { ...list, counts };
    },
    [key],
    { everyMs: auto ? REFRESH_MS : null },
  );
  const now = useNow(1000);

  const f = filter.trim().toLowerCase();
  const matches = useMemo(() => (data ? (f ? data.topics.filter((t) => t.topic.toLowerCase().includes(f)) : data.topics) : []), [data, f]);
  const stats = useMemo(() => {
    const topics = data?.topics ?? [];
    let subs = 0;
    let uni = 0;
    for (const t of topics) {
      subs += t.connections;
      if (t.mode === 'unicast') uni++;
    }
    return { topics: data?.total ?? 0, subs, uni, multi: topics.length - uni };
  }, [data]);

  return (
    <div className="flex flex-col gap-4">
      <StatsStrip counts={data?.counts ?? null} />
      <div className="grid grid-cols-2 gap-3 md:grid-cols-4">
        <Stat label="Live topics" value={data ? num(stats.topics) : '–'} testid="stat-topics" />
        <Stat label="Subscriptions" hint="connections summed over topics" value={data ? num(stats.subs) : '–'} testid="stat-subscriptions" />
        <Stat label="Unicast topics" hint="one connection" value={data ? num(stats.uni) : '–'} />
        <Stat label="Multicast topics" hint="several connections" value={data ? num(stats.multi) : '–'} />
      </div>

      <Card className="gap-4 pb-0">
        <CardHeader>
          <CardTitle>Live topics</CardTitle>
          <CardDescription>
            Topics with at least one connection. Click a topic to see its connections.
          </CardDescription>
          <CardAction className="flex items-center gap-2">
            <span className="hidden items-center gap-1.5 text-xs text-muted-foreground sm:inline-flex" data-testid="updated">
              {auto && <span className={`size-1.5 rounded-full ${error ? 'bg-destructive' : 'bg-success'}`} />}
              {error && !data ? 'Not connected' : updatedAt ? `${auto ? 'Live' : 'Paused'} · updated ${duration(now - updatedAt)} ago` : ''}
            </span>
            <Button variant="outline" size="sm" onClick={() => setAuto((a) => !a)} aria-pressed={!auto} title={auto ? 'Stop refreshing' : `Refresh every ${REFRESH_MS / 1000} s`}>
              {auto ? <Pause /> : <Play />}
              {auto ? 'Pause' : 'Auto-refresh'}
            </Button>
            <Button variant="outline" size="sm" onClick={reload} disabled={loading && !auto} aria-label="Refresh now">
              <RefreshCw className={loading && !auto ? 'animate-spin' : undefined} />
            </Button>
          </CardAction>
        </CardHeader>
        <CardContent className="flex flex-col gap-3 px-0">
          <div className="px-6">
            <div className="relative max-w-sm">
              <Search className="pointer-events-none absolute top-1/2 left-3 size-4 -translate-y-1/2 text-muted-foreground" />
              <Input
                placeholder="Filter topics…"
                aria-label="Filter topics"
                className="pr-9 pl-9"
                value={filter}
                onChange={(e) => setFilter(e.target.value)}
              />
              {filter && (
                <button
                  className="absolute top-1/2 right-2 -translate-y-1/2 rounded p-1 text-muted-foreground hover:text-foreground"
                  onClick={() => setFilter('')}
                  aria-label="Clear filter"
                >
                  <X className="size-4" />
                </button>
              )}
            </div>
          </div>
          {error && data && (
            <div className="px-6">
              <InlineAlert>Refreshing failed: {error}. Showing the last good list; retrying every {REFRESH_MS / 1000} s.</InlineAlert>
            </div>
          )}
          {!data && error ? (
            <ErrorState title="Could not load topics" message={error} onRetry={reload} className="border-t" />
          ) : !data ? (
            <LoadingState label="Loading topics…" className="border-t" />
          ) : data.topics.length === 0 ? (
            <EmptyState icon={Radio} title="No live topics right now" className="border-t">
              A topic appears here as soon as a subscriber connects to it, for example:
              <CommandLine>{`curl -N '${window.location.origin}/sse?topic=demo'`}</CommandLine>
            </EmptyState>
          ) : matches.length === 0 ? (
            <EmptyState
              icon={Search}
              title={`No topic matches “${filter.trim()}”`}
              className="border-t"
              action={
                <Button variant="outline" size="sm" onClick={() => setFilter('')}>
                  Clear filter
                </Button>
              }
            >
              {num(data.topics.length)} live topics are hidden by the filter.
            </EmptyState>
          ) : (
            <TopicTable topics={matches.slice(0, MAX_ROWS)} onConnections={onConnections} onTail={onTail} />
          )}
          {data && (matches.length > MAX_ROWS || data.truncated) && (
            <p className="border-t px-6 py-3 text-xs text-muted-foreground">
              Showing the first {num(Math.min(MAX_ROWS, matches.length))} of {num(data.truncated ? data.total : matches.length)} topics — narrow the filter to find others.
            </p>
          )}
        </CardContent>
      </Card>
    </div>
  );
}

const STRIP: { k: keyof GatewayStats; label: string; hint: string }[] = [
  { k: 'connections', label: 'Connections', hint: 'open subscriber connections (SSE + WebSocket)' },
  { k: 'topics', label: 'Topics', hint: 'live topics' },
  { k: 'publishes', label: 'Publishes', hint: 'events accepted, per topic' },
  { k: 'deliveries', label: 'Deliveries', hint: 'events handed to a connection' },
  { k: 'drops', label: 'Drops', hint: 'events dropped: no subscriber' },
  { k: 'evictions', label: 'Evictions', hint: 'slow connections closed: queue full' },
];

/** The gateway's counts (`/admin/api/stats`), one line. */
function StatsStrip({ counts }: { counts: GatewayStats | null }) {
  const scope = counts ? (counts.scope === 'node' ? `node ${counts.node}` : 'whole deployment') : '';
  return (
    <div className="flex flex-wrap items-center gap-x-5 gap-y-1 rounded-lg border bg-card px-4 py-2 text-sm" data-testid="stats-strip">
      <Activity className="size-4 text-muted-foreground" aria-hidden />
      {STRIP.map(({ k, label, hint }) => (
        <span key={k} className="inline-flex items-baseline gap-1.5" title={hint}>
          <span className="text-xs text-muted-foreground">{label}</span>
          <span className="font-semibold tabular-nums" data-testid={`stats-${k}`}>
            {counts ? num(counts[k] as number) : '–'}
          </span>
        </span>
      ))}
      {scope && <span className="ml-auto text-xs text-muted-foreground">{scope}</span>}
    </div>
  );
}

function Stat({ label, value, hint, testid }: { label: string; value: string; hint?: string; testid?: string }) {
  return (
    <Card className="gap-1 px-5 py-4" title={hint}>
      <div className="text-xs font-medium text-muted-foreground">{label}</div>
      <div className="text-2xl font-semibold tracking-tight tabular-nums" data-testid={testid}>
        {value}
      </div>
    </Card>
  );
}

function TopicTable({ topics, onConnections, onTail }: { topics: Topic[]; onConnections: (t: string) => void; onTail: (t: string) => void }) {
  return (
    <Table data-testid="topics-table">
      <TableHeader>
        <TableRow className="hover:bg-transparent">
          <TableHead className="pl-6">Topic</TableHead>
          <TableHead className="w-36 text-right">Connections</TableHead>
          <TableHead className="w-36">Mode</TableHead>
          <TableHead className="w-56 pr-6 text-right">
            <span className="sr-only">Actions</span>
          </TableHead>
        </TableRow>
      </TableHeader>
      <TableBody>
        {topics.map((t) => (
          <TableRow key={t.topic} data-topic={t.topic} className="group cursor-pointer" onClick={() => onConnections(t.topic)}>
            <TableCell className="pl-6 font-mono text-[0.8125rem] font-medium">{t.topic}</TableCell>
            <TableCell className="text-right tabular-nums" data-testid="topic-connections">
              {num(t.connections)}
            </TableCell>
            <TableCell>
              <Badge variant={t.mode === 'multicast' ? 'info' : 'secondary'} data-testid="topic-mode">
                {t.mode === 'multicast' ? <Activity /> : <Cable />}
                {t.mode}
              </Badge>
            </TableCell>
            <TableCell className="pr-6 text-right">
              <div className="flex justify-end gap-1.5">
                <Button
                  variant="ghost"
                  size="sm"
                  className="h-7"
                  onClick={(e) => {
                    e.stopPropagation();
                    onConnections(t.topic);
                  }}
                >
                  Connections
                </Button>
                <Button
                  variant="outline"
                  size="sm"
                  className="h-7"
                  onClick={(e) => {
                    e.stopPropagation();
                    onTail(t.topic);
                  }}
                >
                  <Radio />
                  Tail
                </Button>
              </div>
            </TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}
