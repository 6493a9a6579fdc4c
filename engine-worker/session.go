package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mau.fi/whatsmeow"
)

// Statuses and reasons of CONTRACT §2.2 (contract/status.py).
const (
	StatusInit          = "INIT"
	StatusQR            = "QR_REQUIRED"
	StatusAuthenticated = "AUTHENTICATED"
	StatusReady         = "READY"
	StatusDisconnected  = "DISCONNECTED"
	StatusError         = "ERROR"

	ReasonQRTimeout      = "QR_TIMEOUT"
	ReasonLoggedOut      = "LOGGED_OUT"
	ReasonTemporaryBan   = "TEMPORARY_BAN"
	ReasonStreamReplaced = "STREAM_REPLACED"
	ReasonConnectFailed  = "CONNECT_FAILED"
	ReasonConnectionLost = "CONNECTION_LOST"
)

// ending tells the run loop why a live connection is over.
type ending struct {
	terminal bool // never redialed (QR timeout, logged out, banned, replaced, needs the user)
	paused   bool // ended by the lease watchdog: not a failure, no backoff; redialed once renewed
	cause    string
	device   string // the stored device JID dialed; empty for a new device (pairing)
}

// Session is one instance: its whatsmeow client, its status, its redial loop.
type Session struct {
	m        *Manager
	instance string
	gen      int64
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{} // closed when run returns
	ended    chan ending   // one connection's end, signalled by an event handler
	wake     chan struct{} // the lease watchdog cuts a backoff short, so the session shows it is paused

	mu      sync.Mutex
	wanted  bool
	status  string
	reason  string
	client  *whatsmeow.Client
	conn    context.CancelFunc // ends the current dial or connection (the lease watchdog calls it)
	dialed  bool
	attempt int
	account map[string]any
	qr      *qrRotation
}

func newSession(m *Manager, instance string, gen int64) *Session {
	ctx, cancel := context.WithCancel(m.ctx)
	return &Session{m: m, instance: instance, gen: gen, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		ended: make(chan ending, 1), wake: make(chan struct{}, 1), wanted: true}
}

// emit sends an event of this session, unless it was dropped.
func (s *Session) emit(ev string, fields map[string]any) {
	s.mu.Lock()
	wanted := s.wanted
	s.mu.Unlock()
	if !wanted {
		return
	}
	msg := map[string]any{"ev": ev, "instance": s.instance, "gen": s.gen}
	for k, v := range fields {
		msg[k] = v
	}
	s.m.emit(msg)
}

// setStatus reports a transition; an unchanged (status, reason) without extras is not repeated.
func (s *Session) setStatus(status, reason string, extra map[string]any) {
	s.mu.Lock()
	wasQR := s.status == StatusQR
	same := s.status == status && s.reason == reason
	s.status, s.reason = status, reason
	s.mu.Unlock()
	if wasQR && status != StatusQR {
		s.stopQR()
		s.emit("qr", map[string]any{"payload": nil, "expires_at": nil})
	}
	if same && len(extra) == 0 {
		return
	}
	fields := map[string]any{"status": status, "reason": nilIfEmpty(reason)}
	for k, v := range extra {
		fields[k] = v
	}
	s.emit("status", fields)
}

func (s *Session) state() (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status, s.reason
}

func nilIfEmpty(v string) any {
	if v == "" {
		return nil
	}
	return v
}

// end tells the run loop the current connection is over (first signal wins).
func (s *Session) end(e ending) {
	select {
	case s.ended <- e:
	default:
	}
}

// halt reports a status that ends the connection.
func (s *Session) halt(status, reason string, terminal bool) {
	s.setStatus(status, reason, nil)
	s.end(ending{terminal: terminal, cause: reason})
}

func (s *Session) currentClient() *whatsmeow.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client
}

// newClient builds a whatsmeow client on the instance's device, with our handlers and proxy.
func (s *Session) newClient(ctx context.Context) (*whatsmeow.Client, error) {
	if s.m.store == nil {
		return nil, errors.New("no store")
	}
	device, err := s.m.store.DeviceFor(ctx, s.instance)
	if err != nil {
		return nil, err
	}
	client := whatsmeow.NewClient(device, s.m.log.For(s.instance))
	// We redial failed dials ourselves (bounded, with backoff); whatsmeow still reconnects a live
	// session that drops, as it should.
	client.InitialAutoReconnect = false
	client.EnableAutoReconnect = true
	if err := client.SetProxyAddress(s.m.cfg.Proxy); err != nil {
		return nil, fmt.Errorf("proxy %q: %w", s.m.cfg.Proxy, err)
	}
	client.AddEventHandler(s.handler(client))
	s.mu.Lock()
	s.client = client
	s.mu.Unlock()
	return client, nil
}

// run dials, lives until the connection ends, and redials failed ones with backoff until dropped.
func (s *Session) run() {
	defer close(s.done)
	for s.ctx.Err() == nil {
		if !s.awaitLease() {
			return
		}
		e := s.connectOnce()
		if s.ctx.Err() != nil {
			return
		}
		if e.paused {
			continue
		}
		if e.terminal {
			s.emit("ended", nil)
			return
		}
		s.mu.Lock()
		s.attempt++
		attempt := s.attempt
		s.mu.Unlock()
		wait := Delay(attempt, s.m.cfg.BackoffBase, s.m.cfg.BackoffCap, nil)
		// The device says whether this redial resumes stored credentials or starts a pairing.
		s.m.log.Warn("dial failed; retrying", "instance_id", s.instance, "attempt", attempt,
			"retry_in_s", wait.Seconds(), "device", e.device, "error", truncate(e.cause, 300))
		s.setStatus(StatusError, ReasonConnectFailed, map[string]any{"attempt": attempt,
			"retry_in": float64(wait.Milliseconds()) / 1000})
		timer := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			timer.Stop()
			return
		case <-s.wake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// awaitLease returns at once while the lease deadline is ahead; past it the session shows DISCONNECTED /
// LEASE_EXPIRED and waits for a renewal. False when the session was dropped meanwhile.
func (s *Session) awaitLease() bool {
	for {
		live, renewed := s.m.leaseLive()
		if live {
			return true
		}
		s.setStatus(StatusDisconnected, ReasonLeaseExpired, nil)
		select {
		case <-renewed:
		case <-s.ctx.Done():
			return false
		}
	}
}

// pause ends the current dial or connection, or the backoff wait, for the lease watchdog.
func (s *Session) pause() {
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	if conn != nil {
		conn()
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// connectOnce is one dial and, when it succeeds, the life of that connection; both end early when the
// lease watchdog cancels the connection's context (a paused ending).
func (s *Session) connectOnce() ending {
	select {
	case <-s.wake: // a pause already dealt with: it must not cut the next backoff short
	default:
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.mu.Lock()
	s.conn = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.conn = nil
		s.mu.Unlock()
		cancel()
	}()
	paused := func() bool { return ctx.Err() != nil && s.ctx.Err() == nil }
	if !s.m.acquireDial(ctx) {
		return ending{paused: s.ctx.Err() == nil}
	}
	client, err := s.newClient(ctx)
	stop := func() {}
	if err == nil {
		stop, err = s.dial(ctx, client)
	}
	s.m.releaseDial()
	defer stop()
	if err != nil && paused() {
		client.Disconnect()
		return ending{paused: true}
	}
	if err != nil {
		device := ""
		if client != nil {
			client.Disconnect()
			if client.Store.ID != nil {
				device = client.Store.ID.String()
			}
		}
		return ending{cause: err.Error(), device: device}
	}
	s.mu.Lock()
	s.dialed = true
	s.mu.Unlock()
	var e ending
	select {
	case e = <-s.ended:
	case <-ctx.Done():
		e.paused = paused()
	}
	s.mu.Lock()
	s.dialed = false
	s.mu.Unlock()
	s.stopQR()
	client.Disconnect()
	client.RemoveEventHandlers()
	if e.paused {
		select {
		case <-s.ended: // signalled by the connection just closed: not the next one's end
		default:
		}
	}
	return e
}

// dial connects with our own deadline: whatsmeow has none, and a proxy that accepts and never answers
// would otherwise hold a dial slot forever. The context stays alive after a successful dial (whatsmeow's
// keep-alive loops run under it) until the session is dropped.
func (s *Session) dial(parent context.Context, client *whatsmeow.Client) (context.CancelFunc, error) {
	ctx, cancel := context.WithCancel(parent)
	result := make(chan error, 1)
	go func() { result <- client.ConnectContext(ctx) }()
	timer := time.NewTimer(s.m.timings.DialTimeout)
	defer timer.Stop()
	select {
	case err := <-result:
		if err != nil {
			cancel()
			return func() {}, err
		}
		return cancel, nil
	case <-timer.C:
		cancel()
		<-result
		return func() {}, fmt.Errorf("no answer from WhatsApp within %s", s.m.timings.DialTimeout)
	}
}

// drop stops the session for good: nothing is emitted afterwards.
func (s *Session) drop() {
	s.mu.Lock()
	s.wanted = false
	client := s.client
	s.mu.Unlock()
	s.cancel()
	s.stopQR()
	if client != nil {
		client.Disconnect()
	}
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.m.log.Warn("session did not stop in time", "instance_id", s.instance)
	}
}

func truncate(v string, n int) string {
	if len(v) > n {
		return v[:n]
	}
	return v
}
