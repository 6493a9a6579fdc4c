package main

import (
	"context"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Manager holds every session of this node: one map under one lock, one store, one dial limiter.
type Manager struct {
	cfg     Config
	timings Timings
	store   *Store
	emitter *Emitter
	log     *Logger

	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	sessions map[string]*Session

	lease         *leaseFence   // in a cluster: no dial past the deadline the coordinator last gave
	dials         chan struct{} // a slot per dial in flight: 1,000 sessions never dial at once
	dialsTotal    atomic.Int64
	dialsInFlight atomic.Int64
	dialsPeak     atomic.Int64
	wg            sync.WaitGroup // every session goroutine, so that shutdown can wait for them
}

// NewManager wires a manager; `store` may be nil only in Go tests that never dial.
func NewManager(cfg Config, timings Timings, store *Store, emitter *Emitter, log *Logger) *Manager {
	cfg.normalise()
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{cfg: cfg, timings: timings, store: store, emitter: emitter, log: log, ctx: ctx,
		cancel: cancel, sessions: make(map[string]*Session), dials: make(chan struct{}, cfg.MaxDials),
		lease: newLeaseFence()}
}

func (m *Manager) emit(message map[string]any) {
	if m.emitter != nil {
		m.emitter.Emit(message)
	}
}

// acquireDial waits for a dial slot; false when the session was stopped or paused meanwhile, or when the
// lease deadline has passed: the gate every dial goes through, checked once the slot is ours (a session
// may wait long for one), so no dial starts past the deadline.
func (m *Manager) acquireDial(ctx context.Context) bool {
	select {
	case m.dials <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	if live, _ := m.leaseLive(); !live || ctx.Err() != nil {
		<-m.dials
		return false
	}
	n := m.dialsInFlight.Add(1)
	for {
		peak := m.dialsPeak.Load()
		if n <= peak || m.dialsPeak.CompareAndSwap(peak, n) {
			break
		}
	}
	m.dialsTotal.Add(1)
	return true
}

func (m *Manager) releaseDial() {
	m.dialsInFlight.Add(-1)
	<-m.dials
}

func (m *Manager) session(instance string) *Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sessions[instance]
}

// replace installs a new session for the instance and returns the one it replaces (to be dropped).
func (m *Manager) replace(s *Session) *Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.sessions[s.instance]
	m.sessions[s.instance] = s
	return old
}

// remove takes the instance's session out of the map (nil when none).
func (m *Manager) remove(instance string) *Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sessions[instance]
	delete(m.sessions, instance)
	return s
}

func (m *Manager) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

// Connect starts (or restarts) dialing an instance under generation gen.
func (m *Manager) Connect(instance string, gen int64) {
	s := newSession(m, instance, gen)
	if old := m.replace(s); old != nil {
		old.drop()
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		s.run()
	}()
}

// Drop stops an instance for good (nothing is emitted for it afterwards).
func (m *Manager) Drop(instance string) {
	if s := m.remove(instance); s != nil {
		s.drop()
	}
}

// Shutdown stops every session, waiting at most `budget` for their goroutines.
func (m *Manager) Shutdown(budget time.Duration) int {
	m.mu.Lock()
	all := make([]*Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		all = append(all, s)
	}
	m.sessions = make(map[string]*Session)
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.drop()
		}()
	}
	m.cancel()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		m.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(budget):
	}
	return len(all)
}

// Ping reports liveness and a few gauges (tests and benches read them).
func (m *Manager) Ping() map[string]any {
	info := map[string]any{"sessions": m.count(), "dials": m.dialsTotal.Load(),
		"dials_in_flight": m.dialsInFlight.Load(), "max_dials_in_flight": m.dialsPeak.Load(),
		"max_dials": m.cfg.MaxDials, "goroutines": runtime.NumGoroutine(), "fds": openFDs(), "pid": os.Getpid()}
	if m.store != nil {
		stats := m.store.DB.Stats()
		info["db_open"] = stats.OpenConnections
		info["db_max_open"] = stats.MaxOpenConnections
	}
	return info
}

func openFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

// statsLoop logs the dial gauges every few seconds while dials happen (operators and benches read them).
func (m *Manager) statsLoop(every time.Duration) {
	defer m.wg.Done()
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	var last int64
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-ticker.C:
		}
		if total := m.dialsTotal.Load(); total != last {
			last = total
			m.log.Info("dial stats", "sessions", m.count(), "dials", total, "dials_in_flight",
				m.dialsInFlight.Load(), "max_dials_in_flight", m.dialsPeak.Load(), "max_dials", m.cfg.MaxDials)
		}
	}
}

// pruneLoop drops old sent IDs once a day until the manager stops.
func (m *Manager) pruneLoop() {
	defer m.wg.Done()
	ticker := time.NewTicker(24 * time.Hour)
	defer ticker.Stop()
	for {
		if m.store != nil {
			if err := m.store.PruneSent(m.ctx); err != nil && m.ctx.Err() == nil {
				m.log.Warn("could not prune sent message IDs", "error", err.Error())
			}
		}
		select {
		case <-m.ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
