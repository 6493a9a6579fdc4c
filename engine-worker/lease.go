package main

// The worker's own lease fence (docs/deploy.md, "A stalled node"). In a cluster the node's Python process
// fences sends, but only the worker holds the connections: when the Python process stalls (SIGSTOP), the
// worker would keep its connections and keep redialling devices that another node has taken over. So the
// coordinator extends a node-wide deadline after every renewal (op `lease`), never later than its own local
// deadline; once it passes, every session is disconnected and no dial starts until a later `lease` moves it.
// A worker that never got a `lease` (a single node on SQLite) is never paused.

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ReasonLeaseExpired is the reason a session shows (with DISCONNECTED) while the lease deadline is past.
const ReasonLeaseExpired = "LEASE_EXPIRED"

type leaseFence struct {
	mu       sync.Mutex
	set      bool          // a `lease` op came: from now on the deadline applies
	deadline time.Time     // on this process's monotonic clock
	renewed  chan struct{} // closed (then replaced) whenever the deadline moves: paused sessions wake up
	paused   bool          // the watchdog paused the sessions and no later deadline has come yet
	kick     chan struct{} // wakes the watchdog when the deadline moves
}

func newLeaseFence() *leaseFence {
	return &leaseFence{renewed: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// monotonicNow is CLOCK_MONOTONIC in seconds: the clock of Python's time.monotonic() on Linux, shared by
// every process of the machine, so a deadline sent as an instant on it does not grow by however long the
// frame waited in the pipe (or the sender stalled between computing it and writing it).
func monotonicNow() float64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

// SetLease moves the deadline to `until` (CLOCK_MONOTONIC seconds); an instant already past pauses at once.
func (m *Manager) SetLease(until float64) time.Duration {
	left := time.Duration((until - monotonicNow()) * float64(time.Second))
	l := m.lease
	l.mu.Lock()
	l.set = true
	l.deadline = time.Now().Add(left)
	close(l.renewed)
	l.renewed = make(chan struct{})
	resumed := l.paused && left > 0
	if resumed {
		l.paused = false
	}
	l.mu.Unlock()
	if resumed {
		m.log.Info("lease renewed; sessions resume dialling", "sessions", m.count(), "lease_left_s", left.Seconds())
	}
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return left
}

// leaseLive says whether dialling is allowed now, and gives a channel closed at the next `lease` op.
func (m *Manager) leaseLive() (bool, <-chan struct{}) {
	l := m.lease
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.set || time.Now().Before(l.deadline), l.renewed
}

// leaseWatchdog pauses every session the moment the deadline passes, whatever the sessions are doing
// (dialling, connected, waiting out a backoff).
func (m *Manager) leaseWatchdog() {
	defer m.wg.Done()
	l := m.lease
	for {
		l.mu.Lock()
		set, left := l.set, time.Until(l.deadline)
		l.mu.Unlock()
		var expiry <-chan time.Time // nil: no deadline to watch, wait for a `lease` op
		var timer *time.Timer
		if set && left <= 0 {
			m.pauseAll()
		} else if set {
			timer = time.NewTimer(left)
			expiry = timer.C
		}
		select {
		case <-m.ctx.Done():
		case <-l.kick:
		case <-expiry:
		}
		if timer != nil {
			timer.Stop()
		}
		if m.ctx.Err() != nil {
			return
		}
	}
}

// pauseAll ends every session's connection or dial and cuts its backoff short; each run loop then waits
// for a renewal (Session.awaitLease). Repeated calls while paused change nothing.
func (m *Manager) pauseAll() {
	l := m.lease
	l.mu.Lock()
	if !l.set || time.Now().Before(l.deadline) {
		l.mu.Unlock()
		return // renewed meanwhile
	}
	first := !l.paused
	l.paused = true
	l.mu.Unlock()
	m.mu.Lock()
	all := make([]*Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		all = append(all, s)
	}
	m.mu.Unlock()
	for _, s := range all {
		s.pause()
	}
	if first {
		m.log.Warn("lease deadline passed; every session disconnected, no dial until renewed",
			"sessions", len(all))
	}
}
