// Command subscriber subscribes to several topics over SSE and prints each event as one JSON
// line. Standard library only.
//
//	go run ./subscriber --url http://127.0.0.1:8787 --topics orders,user:42 [--max N] [--timeout S] \
//	    [--token TOKEN] [--token-command CMD]
//
// Private topics need a subscriber token (--token or SSE_TOKEN); --token-command (or
// SSE_TOKEN_COMMAND) is a shell command that prints a fresh one, run when the gateway says the
// token expired.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// envelope is what `?envelope=json` puts in each event's data: which topic the event came
// from, and the body exactly as published. Event is nil when the publisher sent none.
type envelope struct {
	Topic string  `json:"topic"`
	ID    string  `json:"id"`
	Event *string `json:"event"`
	Data  string  `json:"data"`
}

// sseEvent is one dispatched Server-Sent Event.
type sseEvent struct {
	Event, Data, ID string
}

// errPermanent marks answers that retrying cannot fix (a 4xx: bad topic, no token, ...).
var errPermanent = errors.New("request refused")

// tokenError ends the subscription: its token expired and no fresh one could be had.
type tokenError struct{ msg string }

func (e tokenError) Error() string { return e.msg }

func main() {
	base := flag.String("url", "http://127.0.0.1:8787", "gateway base URL")
	topics := flag.String("topics", "", "comma-separated topics (required)")
	max := flag.Int("max", 0, "exit after this many events (0: no limit)")
	timeout := flag.Float64("timeout", 0, "stop after this many seconds (0: never)")
	token := flag.String("token", os.Getenv("SSE_TOKEN"), "subscriber token for private topics (default $SSE_TOKEN)")
	tokenCommand := flag.String("token-command", os.Getenv("SSE_TOKEN_COMMAND"), "shell command that prints a fresh token (default $SSE_TOKEN_COMMAND)")
	flag.Parse()
	if *topics == "" || *max < 0 || *timeout < 0 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: subscriber --url URL --topics a,b [--max N] [--timeout S] [--token T] [--token-command CMD]")
		os.Exit(2)
	}

	// Ctrl-C, SIGTERM and --timeout all cancel the same context.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*timeout*float64(time.Second)))
		defer cancel()
	}

	s := &subscriber{url: strings.TrimRight(*base, "/") + "/sse?envelope=json", topics: *topics, max: *max,
		token: *token, tokenCommand: *tokenCommand, out: json.NewEncoder(os.Stdout), retry: 3 * time.Second}
	s.out.SetEscapeHTML(false) // print "<" and "&" in bodies as they are
	err := s.run(ctx)
	switch {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded) && *max > 0:
		fmt.Fprintf(os.Stderr, "subscriber: timed out with %d of %d events\n", s.received, *max)
		os.Exit(1)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
	default:
		fmt.Fprintf(os.Stderr, "subscriber: %v\n", err)
		os.Exit(1)
	}
}

type subscriber struct {
	url, topics         string
	max                 int
	token, tokenCommand string
	out                 *json.Encoder

	received    int
	lastEventID string
	retry       time.Duration // the server's `retry:`, the base of the backoff
}

// run reconnects with exponential backoff until --max events, a 4xx, or ctx ends.
func (s *subscriber) run(ctx context.Context) error {
	rnd := rand.New(rand.NewSource(time.Now().UnixNano()))
	attempt := 0 // failed connections since the last successful one
	if s.token == "" && s.tokenCommand != "" {
		if err := s.refreshToken(ctx); err != nil {
			return err
		}
	}
	for {
		connected, wait, err := s.stream(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil || errors.Is(err, errPermanent) || errors.As(err, new(tokenError)) {
			return err
		}
		if connected {
			attempt = 0
		}
		if wait < 0 { // the server asked us to reconnect at once
			fmt.Fprintln(os.Stderr, err)
			continue
		}
		// Exponential backoff from the server's retry, capped at 30 s, with jitter.
		delay := 30 * time.Second
		if attempt < 8 && s.retry<<uint(attempt) < delay {
			delay = s.retry << uint(attempt)
		}
		delay = delay/2 + time.Duration(rnd.Int63n(int64(delay/2)+1))
		if delay < wait {
			delay = wait
		}
		attempt++
		fmt.Fprintf(os.Stderr, "%v; reconnecting in %.1f s\n", err, delay.Seconds())
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stream makes one connection and prints its events. It returns nil once --max events are
// printed; otherwise why the stream ended, whether it had connected, and how long to wait at
// least before the next attempt (negative: reconnect at once).
func (s *subscriber) stream(ctx context.Context) (connected bool, wait time.Duration, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return false, 0, fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header.Set("accept", "text/event-stream")
	req.Header.Set("x-sse-topic", s.topics)
	if s.lastEventID != "" {
		// Resume after the last event we printed (a gateway with replay fills the gap).
		req.Header.Set("last-event-id", s.lastEventID)
	}
	if s.token != "" {
		req.Header.Set("authorization", "Bearer "+s.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, 0, err
	}
	defer res.Body.Close()
	if res.StatusCode >= 400 && res.StatusCode < 500 && res.StatusCode != http.StatusTooManyRequests {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return false, 0, fmt.Errorf("%w: HTTP %d: %s", errPermanent, res.StatusCode, body)
	}
	if res.StatusCode != http.StatusOK {
		secs, _ := strconv.Atoi(res.Header.Get("retry-after"))
		return false, time.Duration(secs) * time.Second, fmt.Errorf("HTTP %d", res.StatusCode)
	}

	// The gateway sends a keepalive every 15 s: a link silent for a minute is dead.
	idle := time.AfterFunc(idleTimeout, cancel)
	defer idle.Stop()
	body := readerFunc(func(p []byte) (int, error) {
		idle.Reset(idleTimeout)
		return res.Body.Read(p)
	})

	err = readEvents(body, func(retry time.Duration) { s.retry = retry }, func(ev sseEvent) error {
		switch ev.Event {
		case "connected":
			connected = true
			fmt.Fprintf(os.Stderr, "connected %s\n", ev.Data)
			return nil
		case "reconnect":
			// Reconnect now: the node is shutting down (or cut off from its cluster), or our
			// token expired (then with a fresh one, or not at all).
			var r struct{ Reason string }
			json.Unmarshal([]byte(ev.Data), &r)
			if r.Reason == "token_expired" {
				if err := s.refreshToken(ctx); err != nil {
					return err
				}
				wait = -1
				return errors.New("token expired: reconnecting with a fresh one")
			}
			wait = -1
			return errors.New("server asked to reconnect")
		}
		var env envelope
		if err := json.Unmarshal([]byte(ev.Data), &env); err != nil {
			return fmt.Errorf("bad envelope %q: %v", ev.Data, err)
		}
		s.lastEventID = ev.ID
		if err := s.out.Encode(env); err != nil {
			return err
		}
		s.received++
		if s.max > 0 && s.received >= s.max {
			return errDone
		}
		return nil
	})
	if errors.Is(err, errDone) {
		return connected, 0, nil
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("no data for %v", idleTimeout)
	}
	if err == nil {
		err = errors.New("stream ended")
	}
	return connected, wait, err
}

// refreshToken runs the token command (through sh -c): its output, trimmed, is the new token.
func (s *subscriber) refreshToken(ctx context.Context) error {
	if s.tokenCommand == "" {
		return tokenError{"token expired (set --token-command or SSE_TOKEN_COMMAND to get fresh ones)"}
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", s.tokenCommand)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	token := strings.TrimSpace(string(out))
	if err == nil && token == "" {
		err = errors.New("printed nothing")
	}
	if err != nil {
		return tokenError{fmt.Sprintf("token command: %v", err)}
	}
	s.token = token
	return nil
}

var errDone = errors.New("done")

const idleTimeout = 60 * time.Second

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// readEvents parses a Server-Sent Events stream (lines end with CRLF, LF or CR; `data:` lines
// join with "\n"; a blank line dispatches) and calls onEvent for each event until it returns
// an error or the stream ends.
func readEvents(r io.Reader, onRetry func(time.Duration), onEvent func(sseEvent) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	sc.Split(scanLines)
	var ev sseEvent
	var data []string
	lastID := ""
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if data != nil {
				ev.Data, ev.ID = strings.Join(data, "\n"), lastID
				if ev.Event == "" {
					ev.Event = "message"
				}
				if err := onEvent(ev); err != nil {
					return err
				}
			}
			ev, data = sseEvent{}, nil
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // a comment, e.g. ": keepalive"
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "data":
			data = append(data, value)
		case "event":
			ev.Event = value
		case "id":
			if !strings.ContainsRune(value, 0) {
				lastID = value
			}
		case "retry":
			if ms, err := strconv.Atoi(value); err == nil && ms >= 0 {
				onRetry(time.Duration(ms) * time.Millisecond)
			}
		}
	}
	return sc.Err()
}

// scanLines is bufio.ScanLines for SSE: a line ends at CRLF, LF or a lone CR.
func scanLines(data []byte, atEOF bool) (int, []byte, error) {
	i := bytes.IndexAny(data, "\r\n")
	switch {
	case i < 0:
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	case data[i] == '\n':
		return i + 1, data[:i], nil
	case i+1 < len(data): // CR followed by something
		if data[i+1] == '\n' {
			return i + 2, data[:i], nil
		}
		return i + 1, data[:i], nil
	case atEOF: // CR at the very end
		return i + 1, data[:i], nil
	default: // CR at the end of the buffer: wait to see whether LF follows
		return 0, nil, nil
	}
}
