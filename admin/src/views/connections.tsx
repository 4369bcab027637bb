import { useEffect, useRef, useState } from 'react';
import { ChevronLeft, ChevronRight, Filter, PlugZap, RefreshCw, X } from 'lucide-react';

import { Code, CommandLine, EmptyState, ErrorState, InlineAlert, LoadingState } from '@/components/states';
import { Badge } from '@/components/ui/badge';
import { Button } from '@/components/ui/button';
import { Card, CardAction, CardContent, CardDescription, CardHeader, CardTitle } from '@/components/ui/card';
import { Input } from '@/components/ui/input';
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from '@/components/ui/table';
import { apiGet, topicProblem, type Connection, type ConnectionsPage } from '@/lib/api';
import { dateTime, duration, num } from '@/lib/format';
import { useLoader, useNow } from '@/lib/hooks';
import { useSession } from '@/lib/session';

export const PAGE_SIZES = [25, 50, 100, 250, 500];
const DEFAULT_PAGE_SIZE = 100;
const MAX_TOPIC_BADGES = 3;

export function ConnectionsView({ topic, onTopic }: { topic: string; onTopic: (topic: string) => void }) {
  const { key } = useSession();
  const [pageSize, setPageSize] = useState(DEFAULT_PAGE_SIZE);
  // cursors[i] is the cursor that loads page i (null for the first page). A new filter or page
  // size starts again at the first page.
  const query = `${topic}\n${pageSize}`;
  const [nav, setNav] = useState<{ query: string; cursors: (string | null)[]; page: number }>({ query, cursors: [null], page: 0 });
  const { cursors, page } = nav.query === query ? nav : { cursors: [null], page: 0 };
  const [draft, setDraft] = useState(topic);
  const [draftError, setDraftError] = useState<string | null>(null);
  useEffect(() => {
    setDraft(topic);
    setDraftError(null);
  }, [topic]);

  const cursor = cursors[page] ?? null;
  // The answer remembers which page it is, so the counts below always match the rows shown
  // (the previous page stays on screen, dimmed, while the next one loads).
  const { data, error, loading, updatedAt, reload } = useLoader<ConnectionsPage & { page: number; pageSize: number }>(
    (signal) => apiGet<ConnectionsPage>(key, 'connections', { limit: pageSize, cursor, topic }, signal).then((d) => ({ ...d, page, pageSize })),
    [key, topic, pageSize, cursor],
    { keep: true },
  );
  const now = useNow(1000);

  const applyFilter = (e?: React.FormEvent) => {
    e?.preventDefault();
    const t = draft.trim();
    if (t) {
      const problem = topicProblem(t);
      if (problem) {
        setDraftError(problem);
        return;
      }
    }
    setDraftError(null);
    onTopic(t);
  };

  const next = () => {
    if (!data?.next_cursor) return;
    setNav({ query, cursors: [...cursors.slice(0, page + 1), data.next_cursor], page: page + 1 });
  };
  const prev = () => setNav({ query, cursors, page: Math.max(0, page - 1) });

  const shownPage = data?.page ?? 0;
  const first = shownPage * (data?.pageSize ?? pageSize) + 1;
  const shown = data?.connections.length ?? 0;
  const pages = data ? Math.max(1, Math.ceil(data.total / data.pageSize)) : 1;
  const pageInfo =
    data && shown > 0
      ? `${num(first)}–${num(first + shown - 1)} of ${num(data.total)} · page ${num(shownPage + 1)} of ${num(Math.max(pages, shownPage + 1))}`
      : data
        ? `${num(data.total)} connections`
        : '';
  // The pager at the bottom brings the top of the next page into view.
  const cardRef = useRef<HTMLDivElement>(null);
  const toTop = () => cardRef.current?.scrollIntoView({ block: 'start' });

  return (
    <Card ref={cardRef} className="scroll-mt-4 gap-4 pb-0">
      <CardHeader>
        <CardTitle>Connections</CardTitle>
        <CardDescription>
          {topic ? (
            <>
              Subscribers of <Code>{topic}</Code>, sorted by connection id.
            </>
          ) : (
            'Every connection to the gateway, sorted by connection id.'
          )}
        </CardDescription>
        <CardAction className="flex items-center gap-2">
          <span className="hidden text-xs text-muted-foreground sm:inline">{updatedAt ? `Updated ${duration(now - updatedAt)} ago` : ''}</span>
          <Button variant="outline" size="sm" onClick={reload} disabled={loading} aria-label="Refresh page">
            <RefreshCw className={loading ? 'animate-spin' : undefined} />
            Refresh
          </Button>
        </CardAction>
      </CardHeader>
      <CardContent className="flex flex-col gap-3 px-0">
        <div className="flex flex-wrap items-start justify-between gap-3 px-6">
          <form className="flex flex-col gap-1.5" onSubmit={applyFilter}>
            <div className="flex items-center gap-2">
              <div className="relative w-72">
                <Filter className="pointer-events-none absolute top-1/2 left-3 size-4 -translate-y-1/2 text-muted-foreground" />
                <Input
                  placeholder="Filter by topic"
                  aria-label="Filter by topic"
                  className="pr-9 pl-9 font-mono"
                  value={draft}
                  aria-invalid={draftError ? true : undefined}
                  onChange={(e) => setDraft(e.target.value)}
                />
                {(draft || topic) && (
                  <button
                    type="button"
                    className="absolute top-1/2 right-2 -translate-y-1/2 rounded p-1 text-muted-foreground hover:text-foreground"
                    onClick={() => {
                      setDraft('');
                      setDraftError(null);
                      onTopic('');
                    }}
                    aria-label="Clear topic filter"
                  >
                    <X className="size-4" />
                  </button>
                )}
              </div>
              <Button type="submit" variant="secondary" size="sm" className="h-9">
                Apply
              </Button>
            </div>
            {draftError && <p className="text-xs text-destructive">{draftError}</p>}
          </form>
          <div className="flex flex-wrap items-center gap-3">
            <label className="flex items-center gap-2 text-sm text-muted-foreground">
              Rows per page
              <select
                aria-label="Rows per page"
                className="h-8 rounded-md border border-input bg-transparent px-2 text-sm text-foreground shadow-xs outline-none focus-visible:border-ring focus-visible:ring-[3px] focus-visible:ring-ring/50"
                value={pageSize}
                onChange={(e) => setPageSize(Number(e.target.value))}
              >
                {PAGE_SIZES.map((n) => (
                  <option key={n} value={n}>
                    {n}
                  </option>
                ))}
              </select>
            </label>
            <span className="text-sm text-muted-foreground tabular-nums" data-testid="page-info">
              {pageInfo}
            </span>
            <div className="flex items-center gap-1.5">
              <Button variant="outline" size="sm" onClick={prev} disabled={page === 0 || loading}>
                <ChevronLeft />
                Previous
              </Button>
              <Button variant="outline" size="sm" onClick={next} disabled={!data?.next_cursor || loading}>
                Next
                <ChevronRight />
              </Button>
            </div>
          </div>
        </div>

        {error && data && (
          <div className="px-6">
            <InlineAlert>Refreshing failed: {error}</InlineAlert>
          </div>
        )}
        {!data && error ? (
          <ErrorState title="Could not load connections" message={error} onRetry={reload} className="border-t" />
        ) : !data ? (
          <LoadingState label="Loading connections…" className="border-t" />
        ) : data.connections.length === 0 ? (
          page > 0 ? (
            <EmptyState
              icon={PlugZap}
              title="This page is empty now"
              className="border-t"
              action={
                <Button variant="outline" size="sm" onClick={() => setNav({ query, cursors: [null], page: 0 })}>
                  Back to the first page
                </Button>
              }
            >
              The connections that were on it have gone.
            </EmptyState>
          ) : topic ? (
            <EmptyState
              icon={PlugZap}
              title={`No connection is subscribed to “${topic}”`}
              className="border-t"
              action={
                <Button variant="outline" size="sm" onClick={() => onTopic('')}>
                  Show all connections
                </Button>
              }
            >
              The topic may have no subscribers any more, or the name is misspelled (topics are case-sensitive).
            </EmptyState>
          ) : (
            <EmptyState icon={PlugZap} title="No connections" className="border-t">
              Nobody is subscribed right now. Open one to see it here:
              <CommandLine>{`curl -N '${window.location.origin}/sse?topic=demo'`}</CommandLine>
            </EmptyState>
          )
        ) : (
          <div className={loading ? 'opacity-60 transition-opacity' : undefined} aria-busy={loading}>
            <ConnectionTable connections={data.connections} now={now} onTopic={onTopic} />
          </div>
        )}

        {data && data.connections.length > 0 && (
          <div className="flex flex-wrap items-center justify-between gap-3 border-t px-6 py-3">
            <p className="text-sm text-muted-foreground tabular-nums">{pageInfo}</p>
            <div className="flex items-center gap-1.5">
              <Button variant="outline" size="sm" aria-label="Previous page" onClick={() => { prev(); toTop(); }} disabled={page === 0 || loading}>
                <ChevronLeft />
                Previous
              </Button>
              <Button variant="outline" size="sm" aria-label="Next page" onClick={() => { next(); toTop(); }} disabled={!data?.next_cursor || loading}>
                Next
                <ChevronRight />
              </Button>
            </div>
          </div>
        )}
      </CardContent>
    </Card>
  );
}

function ConnectionTable({ connections, now, onTopic }: { connections: Connection[]; now: number; onTopic: (t: string) => void }) {
  return (
    <Table data-testid="connections-table">
      <TableHeader>
        <TableRow className="hover:bg-transparent">
          <TableHead className="pl-6">Connection id</TableHead>
          <TableHead>Topics</TableHead>
          <TableHead>Subscriber</TableHead>
          <TableHead>Transport</TableHead>
          <TableHead>Connected since</TableHead>
          <TableHead>Node / colo</TableHead>
          <TableHead className="pr-6 text-right">Events sent</TableHead>
        </TableRow>
      </TableHeader>
      <TableBody>
        {connections.map((c) => {
          const at = Date.parse(c.connected_at);
          return (
            <TableRow key={c.id} data-connection={c.id}>
              <TableCell className="pl-6 font-mono text-xs">{c.id}</TableCell>
              <TableCell className="whitespace-normal">
                <div className="flex max-w-md flex-wrap gap-1">
                  {c.topics.slice(0, MAX_TOPIC_BADGES).map((t) => (
                    <Badge key={t} variant="outline" asChild>
                      <button className="cursor-pointer font-mono font-normal" title={`Show connections of ${t}`} onClick={() => onTopic(t)}>
                        {t}
                      </button>
                    </Badge>
                  ))}
                  {c.topics.length > MAX_TOPIC_BADGES && (
                    <Badge variant="secondary" title={c.topics.slice(MAX_TOPIC_BADGES).join(', ')}>
                      +{c.topics.length - MAX_TOPIC_BADGES} more
                    </Badge>
                  )}
                </div>
              </TableCell>
              <TableCell className="max-w-48 truncate font-mono text-xs" title={c.sub || undefined}>
                {c.sub || <span className="text-muted-foreground">—</span>}
              </TableCell>
              <TableCell>
                <Badge variant={c.transport === 'ws' ? 'warning' : 'info'} className="uppercase">
                  {c.transport}
                </Badge>
              </TableCell>
              <TableCell className="tabular-nums" title={c.connected_at}>
                {Number.isNaN(at) ? (
                  c.connected_at
                ) : (
                  <>
                    {dateTime(at)} <span className="text-muted-foreground">· {duration(now - at)}</span>
                  </>
                )}
              </TableCell>
              <TableCell className="font-mono text-xs">{c.node}</TableCell>
              <TableCell className="pr-6 text-right tabular-nums">{num(c.events_sent)}</TableCell>
            </TableRow>
          );
        })}
      </TableBody>
    </Table>
  );
}
