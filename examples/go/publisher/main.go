// Command publisher publishes N events to several topics and prints the per-topic outcome as
// JSON lines; or mints a subscriber token for private topics (with golang-jwt).
//
//	SSE_API_KEY=dev-key-change-me go run ./publisher --url http://127.0.0.1:8787 \
//	    --topics orders,user:42 [--count N] [--prefix ID_PREFIX]
//	SUBSCRIBER_TOKEN_SECRET=... go run ./publisher mint-token --topics user:42,team:7:* [--sub user-42] [--ttl 3600]
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

	"github.com/golang-jwt/jwt/v5"
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

// tokenClaims are a subscriber token's claims: which topics (or patterns) it opens, besides
// the registered ones (sub, iat, exp).
type tokenClaims struct {
	Topics []string `json:"topics"`
	jwt.RegisteredClaims
}

// mintToken prints a subscriber token (a JWT, HS256) signed with SUBSCRIBER_TOKEN_SECRET, one of
// the gateway's SUBSCRIBER_TOKEN_SECRETS. Your backend does this for a signed-in user and hands
// the token to the user's client.
func mintToken(args []string) {
	flags := flag.NewFlagSet("mint-token", flag.ExitOnError)
	topics := flags.String("topics", "", "comma-separated topics or patterns the token opens (required)")
	sub := flags.String("sub", "", "the subscriber's identity")
	ttl := flags.Int("ttl", 3600, "seconds until the token expires")
	flags.Parse(args)
	secret := os.Getenv("SUBSCRIBER_TOKEN_SECRET")
	if *topics == "" || secret == "" || *ttl <= 0 || flags.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: SUBSCRIBER_TOKEN_SECRET=... publisher mint-token --topics a,b [--sub ID] [--ttl SECONDS]")
		os.Exit(2)
	}
	now := time.Now()
	claims := tokenClaims{
		Topics: strings.Split(*topics, ","),
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   *sub,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Duration(*ttl) * time.Second)),
		},
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		fmt.Fprintf(os.Stderr, "publisher: mint-token: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(token)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "mint-token" {
		mintToken(os.Args[2:])
		return
	}
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
