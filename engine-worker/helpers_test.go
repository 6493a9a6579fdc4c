package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// syncBuffer collects frames written by the emitter from any goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) frames(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	data := append([]byte(nil), b.buf.Bytes()...)
	b.mu.Unlock()
	r := bytes.NewReader(data)
	var out []map[string]any
	for {
		body, err := ReadFrame(r)
		if err == io.EOF {
			return out
		} else if err != nil {
			t.Fatalf("bad frame: %v", err)
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("bad JSON frame: %v", err)
		}
		out = append(out, m)
	}
}

// harness is a manager on a real SQLite store in a temp dir, its frames collected.
type harness struct {
	t   *testing.T
	m   *Manager
	out *syncBuffer
}

func newHarness(t *testing.T, timings Timings) *harness {
	t.Helper()
	log := NewLogger(io.Discard, "warning")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	store, err := OpenStore(ctx, dir, "", 4, log)
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	cfg := Config{DataDir: dir, Proxy: "http://127.0.0.1:1", BackoffBase: 0.05, BackoffCap: 0.1, TestHooks: true}
	m := NewManager(cfg, timings, store, NewEmitter(out), log)
	m.wg.Add(1)
	go m.leaseWatchdog() // as serve() starts it: idle until a `lease` op
	t.Cleanup(func() {
		m.Shutdown(5 * time.Second)
		_ = store.Close()
	})
	return &harness{t: t, m: m, out: out}
}

// events of one instance, of one kind ("" for all).
func (h *harness) events(instance, kind string) []map[string]any {
	var out []map[string]any
	for _, f := range h.out.frames(h.t) {
		if f["instance"] == instance && (kind == "" || f["ev"] == kind) {
			out = append(out, f)
		}
	}
	return out
}

// statuses of one instance as "STATUS" or "STATUS/REASON".
func (h *harness) statuses(instance string) []string {
	var out []string
	for _, f := range h.events(instance, "status") {
		s := f["status"].(string)
		if r, ok := f["reason"].(string); ok {
			s += "/" + r
		}
		out = append(out, s)
	}
	return out
}

func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("timed out waiting for %s", what)
}

func (h *harness) call(op string, args any) (any, error) {
	raw, _ := json.Marshal(args)
	return h.m.Handle(op, raw)
}

func (h *harness) attach(instance string) {
	h.t.Helper()
	if _, err := h.call("test_attach", map[string]any{"instance": instance, "gen": 1}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) drive(instance string, steps ...Step) {
	h.t.Helper()
	if _, err := h.call("test_drive", map[string]any{"instance": instance, "steps": steps}); err != nil {
		h.t.Fatal(err)
	}
}

func last(xs []string) string {
	if len(xs) == 0 {
		return ""
	}
	return xs[len(xs)-1]
}

// silentProxy listens on loopback, accepts every connection and never answers (whatsmeow has no dial deadline
// of its own); it returns the proxy URL. Everything is closed when the test ends.
func silentProxy(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}
