package main

// Test-only operations, refused unless the engine started the worker with test_hooks (never from
// settings): they construct real whatsmeow event structs and run them through the production handlers,
// crash or hang the worker, and seed paired devices for benchmarks.

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.mau.fi/util/random"
	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
)

// Step is one test_drive step: a whatsmeow event by its Go type name, `qr_tick`, or `sleep`.
type Step struct {
	Event        string   `json:"event"`
	Codes        []string `json:"codes"`
	JID          string   `json:"jid"`
	BusinessName string   `json:"business_name"`
	Error        string   `json:"error"`
	Reason       int      `json:"reason"`
	OnConnect    bool     `json:"on_connect"`
	Code         int      `json:"code"`
	ExpireS      float64  `json:"expire_s"`
	Message      string   `json:"message"`
	IDs          []string `json:"ids"`
	Type         string   `json:"type"`
	Chat         string   `json:"chat"`
	Timestamp    float64  `json:"timestamp"`
	ErrorCount   int      `json:"error_count"`
	QRTick       bool     `json:"qr_tick"`
	Sleep        float64  `json:"sleep"`
}

// BuildEvent constructs the real whatsmeow event a step names.
func BuildEvent(st Step) (any, error) {
	jid := func(raw string) (types.JID, error) {
		if raw == "" {
			return types.EmptyJID, nil
		}
		return types.ParseJID(raw)
	}
	switch st.Event {
	case "QR":
		return &events.QR{Codes: st.Codes}, nil
	case "PairSuccess":
		id, err := jid(st.JID)
		return &events.PairSuccess{ID: id, BusinessName: st.BusinessName, Platform: "android"}, err
	case "PairError":
		id, err := jid(st.JID)
		return &events.PairError{ID: id, Error: fmt.Errorf("%s", st.Error)}, err
	case "Connected":
		return &events.Connected{}, nil
	case "Disconnected":
		return &events.Disconnected{}, nil
	case "KeepAliveTimeout":
		return &events.KeepAliveTimeout{ErrorCount: st.ErrorCount}, nil
	case "KeepAliveRestored":
		return &events.KeepAliveRestored{}, nil
	case "LoggedOut":
		return &events.LoggedOut{OnConnect: st.OnConnect, Reason: events.ConnectFailureReason(st.Reason)}, nil
	case "StreamReplaced":
		return &events.StreamReplaced{}, nil
	case "TemporaryBan":
		return &events.TemporaryBan{Code: events.TempBanReason(st.Code), Expire: seconds(st.ExpireS)}, nil
	case "ConnectFailure":
		return &events.ConnectFailure{Reason: events.ConnectFailureReason(st.Reason), Message: st.Message}, nil
	case "ClientOutdated":
		return &events.ClientOutdated{}, nil
	case "Receipt":
		chat, err := jid(st.Chat)
		if err != nil {
			return nil, err
		}
		ts := time.Now()
		if st.Timestamp > 0 {
			ts = time.UnixMilli(int64(st.Timestamp * 1000))
		}
		return &events.Receipt{MessageSource: types.MessageSource{Chat: chat, Sender: chat},
			MessageIDs: st.IDs, Timestamp: ts, Type: types.ReceiptType(st.Type)}, nil
	}
	return nil, fmt.Errorf("not a whatsmeow event this worker handles: %q", st.Event)
}

func (m *Manager) handleTest(op string, raw json.RawMessage) (any, error) {
	switch op {
	case "test_attach":
		// A session wired to a real whatsmeow client on the instance's device, never dialed.
		var a instanceArgs
		if err := decode(raw, &a); err != nil {
			return nil, err
		}
		s := newSession(m, a.Instance, a.Gen)
		close(s.done) // no run loop
		if old := m.replace(s); old != nil {
			old.drop()
		}
		if _, err := s.newClient(m.ctx); err != nil {
			return nil, opErr(KindFailed, "attach %q: %v", a.Instance, err)
		}
		return map[string]any{"attached": true}, nil
	case "test_drive":
		var a struct {
			Instance string `json:"instance"`
			Steps    []Step `json:"steps"`
		}
		if err := decode(raw, &a); err != nil {
			return nil, err
		}
		s := m.session(a.Instance)
		if s == nil || s.currentClient() == nil {
			return nil, opErr(KindNotReady, "no session %q to drive", a.Instance)
		}
		return map[string]any{"driven": len(a.Steps)}, s.drive(a.Steps)
	case "test_go_crash":
		// A real Go runtime crash, off the request goroutine, as a bug in a library would be.
		go func() {
			var crash map[string]int
			crash["boom"]++
		}()
		time.Sleep(5 * time.Second)
		return map[string]any{"survived": true}, nil
	case "test_hang":
		var a struct {
			Seconds float64 `json:"seconds"`
		}
		if err := decode(raw, &a); err != nil {
			return nil, err
		}
		time.Sleep(seconds(a.Seconds))
		return map[string]any{"slept": a.Seconds}, nil
	case "test_seed":
		return m.seed(raw)
	case "test_record_sent":
		var a struct {
			Instance  string `json:"instance"`
			MessageID string `json:"message_id"`
		}
		if err := decode(raw, &a); err != nil {
			return nil, err
		}
		return map[string]any{"recorded": true}, m.store.RecordSent(m.ctx, a.Instance, a.MessageID)
	case "test_stored":
		var a instanceArgs
		if err := decode(raw, &a); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
		defer cancel()
		has, err := m.store.HasDevice(ctx, a.Instance)
		return map[string]any{"device": has}, err
	}
	return nil, opErr(KindBadRequest, "unknown operation %q", op)
}

// drive runs steps through the session's production handler, as whatsmeow's dispatcher would.
func (s *Session) drive(steps []Step) error {
	client := s.currentClient()
	handle := s.handler(client)
	for _, st := range steps {
		switch {
		case st.Sleep > 0:
			time.Sleep(seconds(st.Sleep))
		case st.QRTick:
			if !s.advanceQR() {
				return opErr(KindNotReady, "no QR rotation to advance for %q", s.instance)
			}
		default:
			evt, err := BuildEvent(st)
			if err != nil {
				return opErr(KindBadRequest, "%v", err)
			}
			handle(evt)
		}
	}
	return nil
}

// seed stores paired devices (generated keys, made-up JIDs) for instances: benchmarks of stored sessions.
func (m *Manager) seed(raw json.RawMessage) (any, error) {
	var a struct {
		Instances []string `json:"instances"`
		FirstUser int64    `json:"first_user"`
	}
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(m.ctx, 5*time.Minute)
	defer cancel()
	for i, instance := range a.Instances {
		device := m.store.Container.NewDevice()
		id := types.JID{User: fmt.Sprintf("%d", a.FirstUser+int64(i)), Server: types.DefaultUserServer, Device: 7}
		device.ID = &id
		device.PushName = "Seeded " + instance
		device.Platform = "android"
		device.Account = &waAdv.ADVSignedDeviceIdentity{Details: random.Bytes(32),
			AccountSignature: random.Bytes(64), AccountSignatureKey: random.Bytes(32), DeviceSignature: random.Bytes(64)}
		if err := m.store.Container.PutDevice(ctx, device); err != nil {
			return nil, opErr(KindFailed, "seed %q: %v", instance, err)
		}
		if err := m.store.Remember(ctx, instance, id); err != nil {
			return nil, opErr(KindFailed, "seed %q: %v", instance, err)
		}
	}
	return map[string]any{"seeded": len(a.Instances)}, nil
}
