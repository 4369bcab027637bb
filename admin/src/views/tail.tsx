import { memo, useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { ArrowLeftRight, Loader2, Pause, Play, Radio, Search, Trash2 } from 'lucide-react';

import { JsonText, prettyJson } from '@/components/json';
import { Code, CommandLine, EmptyState, InlineAlert } from '@/components/states';
import { Badge } from '@/components/ui/badge';
import { Button } from '@/components/ui/button';
import { Card, CardAction, CardContent, CardDescription, CardHeader, CardTitle } from '@/components/ui/card';
import { Input } from '@/components/ui/input';
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from '@/components/ui/table';
import { authHeaders, errorFrom, fetchAllTopics, topicProblem } from '@/lib/api';
import { clock, dateTime, num } from '@/lib/format';
import { useLoader } from '@/lib/hooks';
import { useSession } from '@/lib/session';
import { SseParser, type SseMessage } from '@/lib/sse';

/** At most this many events are kept (and rendered); older ones fall off the end. */
export const MAX_EVENTS = 500;
/** New events are put on screen in batches, at most this often. */
const FLUSH_MS = 200;
/** Bodies longer than this are cut until "Show all" is clicked. */
const DATA_PREVIEW = 2000;

export function TailView({ topic, onTopic }: { topic: string; onTopic: (topic: string) => void }) {
  return topic ? <TailStream key={topic} topic={topic} onChange={() => onTopic('')} /> : <TailPicker onPick={onTopic} />;
}

// --- topic picker -------------------------------------------------------------------------

function TailPicker({ onPick }: { onPick: (topic: string) => void }) {
  const { key } = useSession();
  const [draft, setDraft] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const { data, error } = useLoader((signal) => fetchAllTopics(key, signal, 2), [key], { everyMs: 5000 });
  const f = draft.trim().toLowerCase();
  const list = useMemo(() => (data?.topics ?? []).filter((t) => t.topic.toLowerCase().includes(f)).slice(0, 60), [data, f]);

  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    const t = draft.trim();
    const p = topicProblem(t);
    if (p) {
      setProblem(p);
      return;
    }
    onPick(t);
  };

  return (
    <Card className="gap-5">
      <CardHeader>
        <CardTitle>Tail events</CardTitle>
        <CardDescription>
          Pick a topic to watch what is published to it, live. A tail is not a subscriber: it does not keep the topic alive and is not counted as a connection.
        </CardDescription>
      </CardHeader>
      <CardContent className="flex flex-col gap-5">
        <form onSubmit={submit} className="flex flex-col gap-1.5">
          <label htmlFor="tail-topic" className="text-sm font-medium">
            Topic
          </label>
          <div className="flex gap-2">
            <div className="relative w-full max-w-md">
              <Search className="pointer-events-none absolute top-1/2 left-3 size-4 -translate-y-1/2 text-muted-foreground" />
              <Input
                id="tail-topic"
                placeholder="Type a topic or pick one below"
                className="pl-9 font-mono"
                autoComplete="off"
                spellCheck={false}
                value={draft}
                aria-invalid={problem ? true : undefined}
                onChange={(e) => {
                  setDraft(e.target.value);
                  setProblem(null);
                }}
              />
            </div>
            <Button type="submit">
              <Radio />
              Start tail
            </Button>
          </div>
          {problem && <p className="text-xs text-destructive">{problem}</p>}
        </form>

        <div>
          <div className="mb-2 text-xs font-medium tracking-wide text-muted-foreground uppercase">Live topics</div>
          {error && !data ? (
            <InlineAlert>Could not load the live topics ({error}). You can still type a topic name above.</InlineAlert>
          ) : !data ? (
            <div className="flex items-center gap-2 text-sm text-muted-foreground">
              <Loader2 className="size-4 animate-spin" /> Loading topics…
            </div>
          ) : data.topics.length === 0 ? (
            <p className="text-sm text-muted-foreground">
              No topic has subscribers right now. Type a name above anyway: publishes to it show up in the tail (as dropped while nobody is subscribed).
            </p>
          ) : list.length === 0 ? (
            <p className="text-sm text-muted-foreground">
              No live topic matches “{draft.trim()}”. Press <Code>Start tail</Code> to tail it anyway.
            </p>
          ) : (
            <div className="flex flex-wrap gap-2" data-testid="tail-topic-list">
              {list.map((t) => (
                <Button key={t.topic} variant="outline" size="sm" className="font-mono font-normal" onClick={() => onPick(t.topic)}>
                  {t.topic}
                  <span className="rounded bg-muted px-1.5 font-sans text-xs text-muted-foreground tabular-nums">{num(t.connections)}</span>
                </Button>
              ))}
            </div>
          )}
        </div>
      </CardContent>
    </Card>
  );
}

// --- the stream ---------------------------------------------------------------------------

interface TailEvent {
  seq: number;
  kind: string; // published | dropped | other event names
  id: string;
  event: string | null;
  data: string | null;
  reason: string | null;
  ts: number;
}

type Status = { state: 'connecting' | 'live' | 'reconnecting' | 'failed'; message?: string };

let seq = 0;

function toEvent(m: SseMessage): TailEvent {
  let o: Record<string, unknown> | null = null;
  try {
    const v = JSON.parse(m.data);
    if (v && typeof v === 'object' && !Array.isArray(v)) o = v as Record<string, unknown>;
  } catch {
    /* not the JSON envelope: show the raw data */
  }
  const str = (x: unknown) => (typeof x === 'string' ? x : null);
  return {
    seq: ++seq,
    kind: m.event,
    id: str(o?.id) ?? m.id,
    event: o ? str(o.event) : null,
    data: o ? str(o.data) : m.data,
    reason: o ? str(o.reason) : null,
    ts: typeof o?.ts === 'number' ? (o.ts as number) : Date.now(),
  };
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });

function TailStream({ topic, onChange }: { topic: string; onChange: () => void }) {
  const { key, expire } = useSession();
  const [status, setStatus] = useState<Status>({ state: 'connecting' });
  const [events, setEvents] = useState<TailEvent[]>([]);
  const [paused, setPaused] = useState(false);
  const [held, setHeld] = useState(0);
  const [received, setReceived] = useState(0);
  const [rate, setRate] = useState(0);

  // Events not yet on screen (oldest first), bounded like the screen.
  const pending = useRef<TailEvent[]>([]);
  const receivedRef = useRef(0);
  const pausedRef = useRef(false);
  pausedRef.current = paused;

  const flush = useCallback(() => {
    const p = pending.current;
    if (p.length === 0) return;
    pending.current = [];
    setEvents((prev) => {
      const add = p.length > MAX_EVENTS ? p.slice(-MAX_EVENTS) : p;
      const next = add.reverse().concat(prev);
      return next.length > MAX_EVENTS ? next.slice(0, MAX_EVENTS) : next;
    });
  }, []);

  // Put batches on screen (unless paused) and update the counters.
  useEffect(() => {
    const t = setInterval(() => {
      setReceived(receivedRef.current);
      if (pausedRef.current) setHeld(pending.current.length);
      else flush();
    }, FLUSH_MS);
    let lastCount = 0;
    let lastAt = performance.now();
    const r = setInterval(() => {
      const now = performance.now();
      const n = receivedRef.current;
      setRate(((n - lastCount) * 1000) / (now - lastAt));
      lastCount = n;
      lastAt = now;
    }, 1000);
    return () => {
      clearInterval(t);
      clearInterval(r);
    };
  }, [flush]);

  useEffect(() => {
    if (!paused) {
      setHeld(0);
      flush();
    }
  }, [paused, flush]);

  // The connection: fetch + stream parsing (EventSource cannot send authorization); reconnects.
  useEffect(() => {
    const ctrl = new AbortController();
    // Set when the gateway announced it is going away (`event: reconnect`, native runtime).
    let goingAway: string | null = null;
    const onMessage = (m: SseMessage) => {
      if (m.event === 'connected') {
        setStatus({ state: 'live' });
        return;
      }
      if (m.event === 'reconnect') {
        let reason = '';
        try {
          reason = String((JSON.parse(m.data) as { reason?: unknown }).reason ?? '');
        } catch {
          /* no reason given */
        }
        goingAway = `the gateway asked its clients to reconnect${reason ? ` (${reason})` : ''}`;
        setStatus({ state: 'reconnecting', message: goingAway });
        return;
      }
      receivedRef.current++;
      const q = pending.current;
      q.push(toEvent(m));
      if (q.length > MAX_EVENTS) q.splice(0, q.length - MAX_EVENTS);
    };
    (async () => {
      let attempt = 0;
      let retryMs = 1000;
      while (!ctrl.signal.aborted) {
        try {
          const resp = await fetch(`/admin/api/topics/${topic}/tail`, {
            headers: { ...authHeaders(key), accept: 'text/event-stream' },
            signal: ctrl.signal,
            cache: 'no-store',
          });
          if (resp.status === 401) {
            expire();
            return;
          }
          if (!resp.ok) {
            const e = await errorFrom(resp);
            if (resp.status < 500) {
              setStatus({ state: 'failed', message: `${e.message} (${e.status} ${e.code})` });
              return;
            }
            throw e;
          }
          if (!resp.body) throw new Error('the response has no body');
          attempt = 0;
          setStatus({ state: 'live' });
          const parser = new SseParser(onMessage, (ms) => {
            retryMs = ms;
          });
          const reader = resp.body.getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            parser.push(value);
          }
          parser.end();
          if (ctrl.signal.aborted) return;
          setStatus({ state: 'reconnecting', message: goingAway ?? 'the gateway closed the stream' });
          goingAway = null;
        } catch (e) {
          if (ctrl.signal.aborted) return;
          // fetch and stream reads fail with a TypeError when the connection is lost
          const why = e instanceof TypeError ? 'cannot reach the gateway' : e instanceof Error ? e.message : String(e);
          setStatus({ state: 'reconnecting', message: goingAway ?? why });
          goingAway = null;
        }
        attempt++;
        await sleep(Math.min(retryMs * attempt, 15_000), ctrl.signal);
      }
    })();
    return () => ctrl.abort();
  }, [topic, key, expire]);

  const clear = () => {
    pending.current = [];
    setEvents([]);
    setHeld(0);
  };

  return (
    <Card className="gap-4 pb-0">
      <CardHeader>
        <CardTitle className="flex items-center gap-2">
          Tail <Code className="text-sm">{topic}</Code>
          <StatusBadge status={status} paused={paused} />
        </CardTitle>
        <CardDescription className="tabular-nums" data-testid="tail-counters">
          {num(received)} received · {rate >= 10 ? num(Math.round(rate)) : rate.toFixed(1)}/s · showing the newest {num(events.length)} (keeps {num(MAX_EVENTS)})
        </CardDescription>
        <CardAction className="flex items-center gap-2">
          <Button variant={paused ? 'default' : 'outline'} size="sm" onClick={() => setPaused((p) => !p)}>
            {paused ? <Play /> : <Pause />}
            {paused ? 'Resume' : 'Pause'}
          </Button>
          <Button variant="outline" size="sm" onClick={clear} disabled={events.length === 0 && held === 0}>
            <Trash2 />
            Clear
          </Button>
          <Button variant="ghost" size="sm" onClick={onChange}>
            <ArrowLeftRight />
            Change topic
          </Button>
        </CardAction>
      </CardHeader>
      <CardContent className="flex flex-col gap-3 px-0">
        {status.state === 'failed' && (
          <div className="px-6">
            <InlineAlert>
              The gateway refused this tail: {status.message}. Check the topic name, or{' '}
              <button className="underline underline-offset-2" onClick={onChange}>
                pick another topic
              </button>
              .
            </InlineAlert>
          </div>
        )}
        {status.state === 'reconnecting' && (
          <div className="px-6">
            <InlineAlert>Lost the stream: {status.message}. Reconnecting…</InlineAlert>
          </div>
        )}
        {paused && (
          <div className="mx-6 rounded-md border border-warning/40 bg-warning/10 px-3 py-2 text-sm" data-testid="paused-banner">
            Paused: the view is frozen. {held > 0 ? `${num(held)} new event${held === 1 ? '' : 's'} held` : 'New events are held'} (the newest {num(MAX_EVENTS)} are kept) — press Resume to show them.
          </div>
        )}
        {events.length === 0 ? (
          <EmptyState icon={Radio} title={`Waiting for events on “${topic}”`} className="border-t">
            Events published to this topic appear here as they happen. Publish one to try it:
            <CommandLine>{`curl -X POST '${window.location.origin}/publish' \\\n  -H "authorization: Bearer $API_KEY" \\\n  -H 'x-sse-topic: ${topic}' -H 'x-sse-id: evt-1' -H 'x-sse-event: hello' \\\n  -d '{"hello":"world"}'`}</CommandLine>
          </EmptyState>
        ) : (
          <Table className="table-fixed" data-testid="tail-table">
            <TableHeader>
              <TableRow className="hover:bg-transparent">
                <TableHead className="w-32 pl-6">Time</TableHead>
                <TableHead className="w-44">Id</TableHead>
                <TableHead className="w-44">Event</TableHead>
                <TableHead className="pr-6">Data</TableHead>
              </TableRow>
            </TableHeader>
            <TableBody>
              {events.map((ev) => (
                <EventRow key={ev.seq} ev={ev} />
              ))}
            </TableBody>
          </Table>
        )}
      </CardContent>
    </Card>
  );
}

function StatusBadge({ status, paused }: { status: Status; paused: boolean }) {
  if (status.state === 'failed') return <Badge variant="destructive">failed</Badge>;
  if (status.state === 'reconnecting')
    return (
      <Badge variant="warning">
        <Loader2 className="animate-spin" /> reconnecting
      </Badge>
    );
  if (status.state === 'connecting')
    return (
      <Badge variant="secondary">
        <Loader2 className="animate-spin" /> connecting
      </Badge>
    );
  if (paused) return <Badge variant="warning" data-testid="tail-status">paused</Badge>;
  return (
    <Badge variant="success" data-testid="tail-status">
      <span className="size-1.5 animate-pulse rounded-full bg-success" /> live
    </Badge>
  );
}

const EventRow = memo(function EventRow({ ev }: { ev: TailEvent }) {
  return (
    <TableRow data-event-id={ev.id} className="align-top">
      <TableCell className="pl-6 align-top font-mono text-xs tabular-nums text-muted-foreground" title={dateTime(ev.ts)}>
        {clock(ev.ts)}
      </TableCell>
      <TableCell className="truncate align-top font-mono text-xs" title={ev.id}>
        {ev.id || <span className="text-muted-foreground">—</span>}
      </TableCell>
      <TableCell className="align-top">
        <div className="flex flex-wrap gap-1">
          {ev.event ? (
            <Badge variant="outline" className="max-w-full truncate font-mono font-normal">
              {ev.event}
            </Badge>
          ) : (
            <span className="text-xs text-muted-foreground">message</span>
          )}
          {ev.kind !== 'published' && <Badge variant={ev.kind === 'dropped' ? 'warning' : 'secondary'}>{ev.kind}</Badge>}
        </div>
      </TableCell>
      <TableCell className="pr-6 align-top whitespace-normal">
        <DataCell ev={ev} />
      </TableCell>
    </TableRow>
  );
});

function DataCell({ ev }: { ev: TailEvent }) {
  const [all, setAll] = useState(false);
  const body = ev.data ?? '';
  const pretty = useMemo(() => prettyJson(body), [body]);
  if (ev.kind === 'dropped') {
    return (
      <span className="text-xs text-muted-foreground">
        Not delivered{ev.reason ? ` (${ev.reason.replace(/_/g, ' ')})` : ''}: the body was not read.
      </span>
    );
  }
  if (ev.data === null) return <span className="text-xs text-muted-foreground">(no data)</span>;
  if (body === '') return <span className="text-xs text-muted-foreground italic">(empty body)</span>;
  const text = pretty ?? body;
  const long = text.length > DATA_PREVIEW;
  const shown = all || !long ? text : `${text.slice(0, DATA_PREVIEW)}…`;
  return (
    <div className="min-w-0">
      <pre className={`max-h-96 overflow-auto font-mono text-xs leading-relaxed break-words whitespace-pre-wrap ${pretty ? 'rounded-md bg-muted/60 px-2.5 py-1.5' : ''}`} data-testid="event-data">
        {pretty ? <JsonText text={shown} /> : shown}
      </pre>
      {long && (
        <button className="mt-1 text-xs font-medium text-info hover:underline" onClick={() => setAll((a) => !a)}>
          {all ? 'Show less' : `Show all (${num(Math.ceil(text.length / 1024))} KB)`}
        </button>
      )}
    </div>
  );
}
