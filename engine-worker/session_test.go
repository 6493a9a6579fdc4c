package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
)

func TestRefusingProxyReportsConnectFailedAndBacksOff(t *testing.T) {
	h := newHarness(t, fast)
	h.m.Connect("dial", 3)
	h.waitFor("three attempts", func() bool { return len(h.events("dial", "status")) >= 3 })
	evs := h.events("dial", "status")
	for i, f := range evs[:3] {
		if f["status"] != "ERROR" || f["reason"] != "CONNECT_FAILED" || f["gen"].(float64) != 3 {
			t.Fatalf("event %d: %v", i, f)
		}
		if int(f["attempt"].(float64)) != i+1 {
			t.Fatalf("attempt %v, want %d", f["attempt"], i+1)
		}
		nominal := NominalDelay(i+1, 0.05, 0.1)
		if wait := f["retry_in"].(float64); wait < nominal*0.79 || wait > 0.1 {
			t.Fatalf("retry_in %v for nominal %v", wait, nominal)
		}
	}
	h.m.Drop("dial")
	n := len(h.events("dial", ""))
	time.Sleep(300 * time.Millisecond)
	if len(h.events("dial", "")) != n {
		t.Fatal("events after disconnect")
	}
}

func TestManySessionsSettleWithBoundedDials(t *testing.T) {
	h := newHarness(t, fast)
	h.m.cfg.BackoffBase, h.m.cfg.BackoffCap = 5, 10
	h.m.dials = make(chan struct{}, 4)
	const n = 200
	for i := 0; i < n; i++ {
		h.m.Connect(fmt.Sprintf("s%d", i), 1)
	}
	h.waitFor("every session failed its dial", func() bool {
		failed := 0
		for _, f := range h.out.frames(t) {
			if f["ev"] == "status" && f["reason"] == "CONNECT_FAILED" {
				failed++
			}
		}
		return failed >= n
	})
	if peak := h.m.dialsPeak.Load(); peak > 4 || peak < 1 {
		t.Fatalf("dials in flight peaked at %d, bound 4", peak)
	}
	if got := h.m.count(); got != n {
		t.Fatalf("%d sessions", got)
	}
	if h.m.Shutdown(5*time.Second) != n {
		t.Fatal("shutdown lost sessions")
	}
}

func TestBackoffIsExponentialCappedAndJittered(t *testing.T) {
	var got []float64
	for a := 1; a <= 10; a++ {
		got = append(got, NominalDelay(a, 1, 300))
	}
	want := []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 300}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%v", got)
	}
	for _, r := range []float64{0, 0.5, 0.999} {
		d := Delay(3, 1, 300, func() float64 { return r }).Seconds()
		if d < 3.2-1e-9 || d > 4.8+1e-9 {
			t.Fatalf("jittered %v", d)
		}
	}
	if Delay(40, 1, 300, func() float64 { return 0.999 }).Seconds() > 300 {
		t.Fatal("over the cap")
	}
}

func TestPostgresDSN(t *testing.T) {
	cases := map[string]string{
		"postgresql+psycopg://u@127.0.0.1:5432/db":   "postgresql://u@127.0.0.1:5432/db?sslmode=disable",
		"postgres://u@db.example.com/x":              "postgres://u@db.example.com/x",
		"postgresql://u@localhost/x?sslmode=require": "postgresql://u@localhost/x?sslmode=require",
		"postgresql+asyncpg://u:p@127.0.0.1/db?a=b":  "postgresql://u:p@127.0.0.1/db?a=b&sslmode=disable",
	}
	for in, want := range cases {
		if got := PostgresDSN(in); got != want {
			t.Errorf("%s → %s, want %s", in, got, want)
		}
	}
}

func TestFramesRoundTrip(t *testing.T) {
	buf := &syncBuffer{}
	e := NewEmitter(buf)
	e.Reply(7, map[string]any{"x": 1}, nil)
	e.Reply(8, nil, opErr(KindNotReady, "session %q is INIT", "a"))
	frames := buf.frames(t)
	if len(frames) != 2 || frames[0]["ok"] != true || frames[1]["error"] != KindNotReady ||
		!strings.Contains(frames[1]["message"].(string), `"a"`) {
		t.Fatalf("%v", frames)
	}
}

func TestRedialsLeakNoGoroutines(t *testing.T) {
	h := newHarness(t, fast)
	h.m.cfg.BackoffBase, h.m.cfg.BackoffCap = 0.01, 0.02
	const n = 20
	for i := 0; i < n; i++ {
		h.m.Connect(fmt.Sprintf("g%d", i), 1)
	}
	// Dials in flight own a few short-lived goroutines each: compare the quietest moments, not one sample.
	quietest := func() int {
		low := 1 << 30
		for i := 0; i < 40; i++ {
			low = min(low, runtime.NumGoroutine())
			time.Sleep(5 * time.Millisecond)
		}
		return low
	}
	h.waitFor("many redials", func() bool { return h.m.dialsTotal.Load() >= 5*n })
	first := quietest()
	h.waitFor("many more redials", func() bool { return h.m.dialsTotal.Load() >= 25*n })
	if now := quietest(); now > first+n/2 {
		t.Fatalf("goroutines grew from %d to %d over %d redials", first, now, 20*n)
	}
	h.m.Shutdown(5 * time.Second)
	h.waitFor("every session goroutine gone", func() bool { return runtime.NumGoroutine() < first-n/2 })
}

func TestSendErrorKinds(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{whatsmeow.ErrMessageTimedOut, KindSendUnknown},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), KindSendUnknown},
		{&whatsmeow.DisconnectedError{Action: "message send"}, KindSendUnknown},
		{fmt.Errorf("%w 479", whatsmeow.ErrServerReturnedError), KindSendFailed},
		{whatsmeow.ErrNotLoggedIn, KindSendFailed},
	}
	for _, tc := range cases {
		if got := sendErrorKind(tc.err); got != tc.want {
			t.Errorf("%v → %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestSilentProxyDialIsAbandonedAtOurDeadline(t *testing.T) {
	// A proxy that accepts and never answers: whatsmeow has no dial deadline of its own.
	proxy := silentProxy(t) // accepts and never answers
	timings := fast
	timings.DialTimeout = 300 * time.Millisecond
	h := newHarness(t, timings)
	h.m.cfg.Proxy = proxy
	h.m.cfg.BackoffBase, h.m.cfg.BackoffCap = 5, 10
	started := time.Now()
	h.m.Connect("silent", 1)
	h.waitFor("CONNECT_FAILED", func() bool { return last(h.statuses("silent")) == "ERROR/CONNECT_FAILED" })
	if took := time.Since(started); took < 250*time.Millisecond || took > 5*time.Second {
		t.Fatalf("gave up after %v, deadline 300ms", took)
	}
	if h.m.dialsInFlight.Load() != 0 {
		t.Fatal("the abandoned dial still holds its slot")
	}
}

// A failed dial's log line names the stored device it dialled, or none for a new device (pairing): how an
// operator (and the cluster test) tells a redial of stored credentials from a pairing.
func TestDialFailureLogNamesTheStoredDevice(t *testing.T) {
	h := newHarness(t, fast)
	logs := &syncBuffer{}
	h.m.log = NewLogger(logs, "warning")
	if _, err := h.call("test_seed", map[string]any{"instances": []string{"stored"}, "first_user": 5491100000042}); err != nil {
		t.Fatal(err)
	}
	h.m.Connect("stored", 1)
	h.m.Connect("new", 1)
	devices := func() map[string]string {
		logs.mu.Lock()
		text := logs.buf.String()
		logs.mu.Unlock()
		found := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
			var entry map[string]any
			if json.Unmarshal([]byte(line), &entry) == nil && entry["msg"] == "dial failed; retrying" {
				found[entry["instance_id"].(string)] = entry["device"].(string)
			}
		}
		return found
	}
	h.waitFor("a failed dial of each", func() bool { return len(devices()) == 2 })
	if got := devices(); got["stored"] != "5491100000042:7@s.whatsapp.net" || got["new"] != "" {
		t.Fatalf("devices in the dial-failure logs: %v", got)
	}
}
