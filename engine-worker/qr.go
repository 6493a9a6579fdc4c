package main

import (
	"sync"
	"time"
)

// qrRotation shows whatsmeow's QR codes one after another (first 60 s, then 20 s each, as whatsmeow's
// own QR channel does) and ends the session with QR_TIMEOUT when nobody scanned any of them.
type qrRotation struct {
	stop    chan struct{}
	advance chan struct{} // test hook: show the next code now
	once    sync.Once
}

func (r *qrRotation) close() { r.once.Do(func() { close(r.stop) }) }

func (s *Session) onQR(codes []string) {
	r := &qrRotation{stop: make(chan struct{}), advance: make(chan struct{}, 1)}
	s.mu.Lock()
	old := s.qr
	s.qr = r
	s.attempt = 0
	s.mu.Unlock()
	if old != nil {
		old.close()
	}
	s.m.wg.Add(1)
	go func() {
		defer s.m.wg.Done()
		s.rotate(r, codes)
	}()
}

func (s *Session) qrActive(r *qrRotation) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.qr == r && s.wanted
}

func (s *Session) rotate(r *qrRotation, codes []string) {
	for i, code := range codes {
		ttl := s.m.timings.NextQR
		if i == 0 {
			ttl = s.m.timings.FirstQR
		}
		if !s.qrActive(r) {
			return
		}
		s.setStatus(StatusQR, "", nil)
		expires := time.Now().Add(ttl)
		s.emit("qr", map[string]any{"payload": code, "expires_at": float64(expires.UnixMilli()) / 1000})
		timer := time.NewTimer(ttl)
		select {
		case <-r.stop:
			timer.Stop()
			return
		case <-s.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-r.advance:
			timer.Stop()
		}
	}
	if s.qrActive(r) {
		s.halt(StatusError, ReasonQRTimeout, true)
	}
}

// stopQR ends the current rotation, if any.
func (s *Session) stopQR() {
	s.mu.Lock()
	r := s.qr
	s.qr = nil
	s.mu.Unlock()
	if r != nil {
		r.close()
	}
}

// advanceQR is the test hook behind the `qr_tick` step.
func (s *Session) advanceQR() bool {
	s.mu.Lock()
	r := s.qr
	s.mu.Unlock()
	if r == nil {
		return false
	}
	select {
	case r.advance <- struct{}{}:
	default:
	}
	return true
}
