package main

import (
	"testing"
	"time"
)

const leaseExpired = StatusDisconnected + "/" + ReasonLeaseExpired

func (h *harness) lease(seconds float64) {
	h.t.Helper()
	if _, err := h.call("lease", map[string]any{"until": monotonicNow() + seconds}); err != nil {
		h.t.Fatal(err)
	}
}

// Past the deadline the redial loop stops dialling at once and the session says why; a later lease resumes
// it, and its status comes back to the dial's true outcome.
func TestLeaseDeadlineStopsDialsUntilRenewed(t *testing.T) {
	h := newHarness(t, fast)
	h.m.cfg.BackoffBase, h.m.cfg.BackoffCap = 0.02, 0.04
	h.lease(0.4)
	h.m.Connect("a", 1)
	h.waitFor("dials before the deadline", func() bool { return h.m.dialsTotal.Load() >= 3 })
	h.waitFor("paused at the deadline", func() bool { return last(h.statuses("a")) == leaseExpired })
	paused := h.m.dialsTotal.Load()
	time.Sleep(400 * time.Millisecond) // some twenty backoffs' worth
	if got := h.m.dialsTotal.Load(); got != paused {
		t.Fatalf("%d dials past the deadline", got-paused)
	}
	if h.m.dialsInFlight.Load() != 0 {
		t.Fatal("a dial still in flight past the deadline")
	}
	if n := len(h.events("a", "status")); last(h.statuses("a")) != leaseExpired || n == 0 {
		t.Fatalf("statuses while paused: %v", h.statuses("a"))
	}
	h.lease(30)
	h.waitFor("dialling again", func() bool { return h.m.dialsTotal.Load() >= paused+3 })
	h.waitFor("the true status back", func() bool { return last(h.statuses("a")) == "ERROR/CONNECT_FAILED" })
}

// A lease already past (a restarted worker of a node whose deadline went by) pauses at once: a session
// connected then never dials until a renewal.
func TestSessionConnectedPastTheDeadlineNeverDials(t *testing.T) {
	h := newHarness(t, fast)
	h.lease(-1)
	h.m.Connect("late", 1)
	h.waitFor("shown as paused", func() bool { return last(h.statuses("late")) == leaseExpired })
	time.Sleep(200 * time.Millisecond)
	if n := h.m.dialsTotal.Load(); n != 0 {
		t.Fatalf("%d dials past the deadline", n)
	}
	h.lease(30)
	h.waitFor("dialled once renewed", func() bool { return h.m.dialsTotal.Load() >= 1 })
}

// A session renewed in time is never paused; a worker never given a lease (a single node) never is either.
func TestRenewedLeaseNeverPauses(t *testing.T) {
	h := newHarness(t, fast)
	h.m.cfg.BackoffBase, h.m.cfg.BackoffCap = 0.02, 0.04
	h.m.Connect("free", 1)
	h.lease(0.3)
	h.m.Connect("renewed", 1)
	for i := 0; i < 10; i++ {
		time.Sleep(100 * time.Millisecond)
		h.lease(0.3)
	}
	for _, instance := range []string{"free", "renewed"} {
		for _, st := range h.statuses(instance) {
			if st == leaseExpired {
				t.Fatalf("%s paused while renewed: %v", instance, h.statuses(instance))
			}
		}
	}
	if h.m.dialsTotal.Load() < 10 {
		t.Fatalf("only %d dials", h.m.dialsTotal.Load())
	}
}

// The watchdog ends a dial in flight at the deadline (not at the 30 s dial timeout) and frees its slot.
func TestWatchdogAbandonsADialInFlight(t *testing.T) {
	proxy := silentProxy(t) // accepts and never answers
	h := newHarness(t, Timings{DialTimeout: 30 * time.Second})
	h.m.cfg.Proxy = proxy
	h.lease(0.3)
	started := time.Now()
	h.m.Connect("hung", 1)
	h.waitFor("a dial in flight", func() bool { return h.m.dialsInFlight.Load() == 1 })
	h.waitFor("paused", func() bool { return last(h.statuses("hung")) == leaseExpired })
	if took := time.Since(started); took > 5*time.Second {
		t.Fatalf("paused after %v", took)
	}
	h.waitFor("the slot freed", func() bool { return h.m.dialsInFlight.Load() == 0 })
	if n := h.m.dialsTotal.Load(); n != 1 {
		t.Fatalf("%d dials", n)
	}
}

func TestLeaseNeedsUntil(t *testing.T) {
	h := newHarness(t, fast)
	if _, err := h.call("lease", map[string]any{"seconds": 3}); err == nil {
		t.Fatal("a lease without `until` was accepted")
	}
}
