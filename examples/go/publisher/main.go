// Command publisher publishes N events to several topics and prints the per-topic outcome as
// JSON lines. Standard library only.
//
//	SSE_API_KEY=dev-key-change-me go run ./publisher --url http://127.0.0.1:8787 \
//	    --topics orders,user:42 [--count N] [--prefix ID_PREFIX]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// sampleEvent returns event i of the shared sample set (see examples/README.md): the event
// type ("" for none) and a body, multi-line or unicode in turn.
func sampleEvent(i int) (event, data string) {
	switch (i - 1) % 5 {
	case 0:
		return "note", fmt.Sprintf("plain text #%d", i)
	case 1:
		return "multi-line", fmt.Sprintf("line 1 of #%d\nline 2\nline 3", i)
	case 2:
		return "multi-line", fmt.Sprintf("crlf #%d\r\nsecond line\r\n", i)
	case 3:
		return "unicode", fmt.Sprintf("unicode #%d: 你好，世界 🚀 café ✓", i)
	default:
		return "", fmt.Sprintf(`{"n":%d,"ok":true}`, i)
	}
}

// publishResult is the 202 answer: per topic, {"delivered": n} or {"dropped": "no_subscribers"}.
type publishResult struct {
	Topics map[string]struct {
		Delivered int    `json:"delivered"`
		Dropped   string `json:"dropped"`
	} `json:"topics"`
}

type outcome struct {
	Topic     string `json:"topic"`
	Published int    `json:"published"`
	Delivered int    `json:"delivered"`
	Dropped   int    `json:"dropped"`
}

func main() {
	base := flag.String("url", "http://127.0.0.1:8787", "gateway base URL")
	topics := flag.String("topics", "", "comma-separated topics (required); one POST reaches them all")
	count := flag.Int("count", 10, "events to send")
	prefix := flag.String("prefix", "evt", "event ids are PREFIX-1 ... PREFIX-N")
	flag.Parse()
	apiKey := os.Getenv("SSE_API_KEY")
	if *topics == "" || apiKey == "" || *count < 0 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: SSE_API_KEY=... publisher --url URL --topics a,b [--count N] [--prefix P]")
		os.Exit(2)
	}

	var order []string
	outcomes := map[string]*outcome{}
	for _, t := range strings.Split(*topics, ",") {
		t = strings.TrimSpace(t)
		order = append(order, t)
		outcomes[t] = &outcome{Topic: t}
	}

	client := &http.Client{Timeout: 30 * time.Second}
	for i := 1; i <= *count; i++ {
		id := fmt.Sprintf("%s-%d", *prefix, i)
		event, data := sampleEvent(i)
		req, err := http.NewRequest(http.MethodPost, strings.TrimRight(*base, "/")+"/publish", strings.NewReader(data))
		if err != nil {
			fail(id, err)
		}
		req.Header.Set("authorization", "Bearer "+apiKey)
		req.Header.Set("content-type", "text/plain; charset=utf-8")
		req.Header.Set("x-sse-topic", *topics)
		req.Header.Set("x-sse-id", id)
		if event != "" {
			req.Header.Set("x-sse-event", event)
		}
		res, err := client.Do(req)
		if err != nil {
			fail(id, err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			fail(id, err)
		}
		if res.StatusCode != http.StatusAccepted {
			fail(id, fmt.Errorf("HTTP %d: %s", res.StatusCode, body))
		}
		var result publishResult
		if err := json.Unmarshal(body, &result); err != nil {
			fail(id, fmt.Errorf("bad answer %q: %v", body, err))
		}
		for topic, r := range result.Topics {
			if o := outcomes[topic]; o != nil {
				o.Published++
				o.Delivered += r.Delivered
				if r.Dropped != "" {
					o.Dropped++
				}
			}
		}
	}

	out := json.NewEncoder(os.Stdout)
	for _, t := range order {
		out.Encode(outcomes[t])
	}
}

func fail(id string, err error) {
	fmt.Fprintf(os.Stderr, "publisher: %s: %v\n", id, err)
	os.Exit(1)
}
