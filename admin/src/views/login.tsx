import { useState } from 'react';
import { Eye, EyeOff, KeyRound, Loader2 } from 'lucide-react';

import { Logo } from '@/components/logo';
import { Code, InlineAlert } from '@/components/states';
import { Button } from '@/components/ui/button';
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from '@/components/ui/card';
import { Input } from '@/components/ui/input';
import { ApiError, apiGet } from '@/lib/api';

export function Login({ notice, onLogin }: { notice: string | null; onLogin: (key: string) => void }) {
  const [key, setKey] = useState('');
  const [show, setShow] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const k = key.trim();
    if (!k) {
      setError('Enter an API key.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      // Any admin call checks the key; the smallest one will do.
      await apiGet(k, 'topics', { limit: 1 });
      onLogin(k);
    } catch (err) {
      if (err instanceof ApiError && err.unauthorized) {
        setError('The gateway rejected this API key (401 unauthorized). Use one of the keys in the gateway’s API_KEYS setting.');
      } else if (err instanceof ApiError) {
        setError(`The gateway answered ${err.status} ${err.code}: ${err.message}`);
      } else {
        setError(err instanceof Error ? err.message : String(err));
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="flex min-h-svh items-center justify-center bg-muted/40 px-4 py-10">
      <div className="w-full max-w-sm">
        <div className="mb-6 flex flex-col items-center gap-3 text-center">
          <Logo className="size-10 text-primary" />
          <div>
            <h1 className="text-lg font-semibold tracking-tight">SSE Gateway</h1>
            <p className="text-sm text-muted-foreground">Admin console</p>
          </div>
        </div>
        <Card className="gap-5">
          <CardHeader>
            <CardTitle>Sign in</CardTitle>
            <CardDescription>Use one of the gateway’s API keys (the same keys publishers use).</CardDescription>
          </CardHeader>
          <CardContent>
            <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
              {notice && !error && (
                <InlineAlert>
                  <span data-testid="login-notice">{notice}</span>
                </InlineAlert>
              )}
              {error && (
                <InlineAlert>
                  <span data-testid="login-error">{error}</span>
                </InlineAlert>
              )}
              <div className="flex flex-col gap-2">
                <label htmlFor="api-key" className="text-sm font-medium">
                  API key
                </label>
                <div className="relative">
                  <KeyRound className="pointer-events-none absolute top-1/2 left-3 size-4 -translate-y-1/2 text-muted-foreground" />
                  <Input
                    id="api-key"
                    name="api-key"
                    type={show ? 'text' : 'password'}
                    autoComplete="off"
                    spellCheck={false}
                    autoFocus
                    placeholder="paste your key"
                    className="pr-10 pl-9 font-mono"
                    value={key}
                    aria-invalid={error ? true : undefined}
                    onChange={(e) => setKey(e.target.value)}
                  />
                  <button
                    type="button"
                    className="absolute top-1/2 right-2 -translate-y-1/2 rounded p-1 text-muted-foreground hover:text-foreground"
                    onClick={() => setShow((s) => !s)}
                    aria-label={show ? 'Hide key' : 'Show key'}
                  >
                    {show ? <EyeOff className="size-4" /> : <Eye className="size-4" />}
                  </button>
                </div>
              </div>
              <Button type="submit" disabled={busy} className="w-full">
                {busy && <Loader2 className="animate-spin" />}
                {busy ? 'Checking key…' : 'Sign in'}
              </Button>
            </form>
          </CardContent>
        </Card>
        <p className="mt-4 px-2 text-center text-xs leading-relaxed text-muted-foreground">
          The key stays in this browser’s <Code className="text-xs">localStorage</Code> and is sent as{' '}
          <Code className="text-xs">authorization: Bearer</Code> on every request. Sign out clears it.
        </p>
      </div>
    </main>
  );
}
