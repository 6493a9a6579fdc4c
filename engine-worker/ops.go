package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/proto"
)

type instanceArgs struct {
	Instance string `json:"instance"`
	Gen      int64  `json:"gen"`
}

// Handle runs one operation of the pipe protocol.
func (m *Manager) Handle(op string, raw json.RawMessage) (any, error) {
	if strings.HasPrefix(op, "test_") {
		if !m.cfg.TestHooks {
			return nil, opErr(KindBadRequest, "unknown operation %q", op)
		}
		return m.handleTest(op, raw)
	}
	switch op {
	case "ping":
		return m.Ping(), nil
	case "lease":
		// until: an instant of CLOCK_MONOTONIC in seconds (lease.go says why not a duration).
		var a struct {
			Until *float64 `json:"until"`
		}
		if err := decode(raw, &a); err != nil {
			return nil, err
		}
		if a.Until == nil {
			return nil, opErr(KindBadRequest, "lease needs `until`")
		}
		return map[string]any{"left_s": m.SetLease(*a.Until).Seconds()}, nil
	case "connect":
		var a instanceArgs
		if err := decode(raw, &a); err != nil {
			return nil, err
		}
		m.Connect(a.Instance, a.Gen)
		return map[string]any{"started": true}, nil
	case "disconnect":
		var a instanceArgs
		if err := decode(raw, &a); err != nil {
			return nil, err
		}
		m.Drop(a.Instance)
		return map[string]any{"stopped": true}, nil
	case "logout":
		return m.logout(raw)
	case "forget":
		var a instanceArgs
		if err := decode(raw, &a); err != nil {
			return nil, err
		}
		m.Drop(a.Instance)
		return map[string]any{"forgotten": true}, m.forgetStored(a.Instance)
	case "pair_code":
		return m.pairCode(raw)
	case "send":
		return m.send(raw)
	case "check_numbers":
		return m.checkNumbers(raw)
	case "account":
		var a instanceArgs
		if err := decode(raw, &a); err != nil {
			return nil, err
		}
		if s := m.session(a.Instance); s != nil {
			return s.accountInfo(), nil
		}
		return nil, nil
	}
	return nil, opErr(KindBadRequest, "unknown operation %q", op)
}

func decode(raw json.RawMessage, into any) error {
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return opErr(KindBadRequest, "bad arguments %s: %v", truncate(string(raw), 200), err)
	}
	return nil
}

// live is the instance's session when it is dialed and in `status`; otherwise NOT_READY.
func (m *Manager) live(instance, status string) (*Session, *whatsmeow.Client, error) {
	s := m.session(instance)
	if s == nil {
		return nil, nil, opErr(KindNotReady, "session %q is DISCONNECTED, not %s", instance, status)
	}
	s.mu.Lock()
	current, client, dialed := s.status, s.client, s.dialed
	s.mu.Unlock()
	if client == nil || !dialed || current != status {
		if current == "" {
			current = StatusInit
		}
		return nil, nil, opErr(KindNotReady, "session %q is %s, not %s", instance, current, status)
	}
	return s, client, nil
}

func (m *Manager) forgetStored(instance string) error {
	if m.store == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
	defer cancel()
	return m.store.Forget(ctx, instance)
}

func (m *Manager) logout(raw json.RawMessage) (any, error) {
	var a instanceArgs
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	unlinked := false
	if s := m.session(a.Instance); s != nil {
		s.mu.Lock()
		client, dialed := s.client, s.dialed
		s.mu.Unlock()
		if client != nil && dialed && client.Store.ID != nil {
			ctx, cancel := context.WithTimeout(m.ctx, m.timings.Logout)
			// Unlinks the device at WhatsApp and deletes it from the store (no LoggedOut event follows).
			err := client.Logout(ctx)
			cancel()
			if err != nil {
				m.log.Warn("logout could not reach WhatsApp; deleting local credentials",
					"instance_id", a.Instance, "error", err.Error())
			} else {
				unlinked = true
			}
		}
	}
	m.Drop(a.Instance)
	return map[string]any{"unlinked": unlinked}, m.forgetStored(a.Instance)
}

func (m *Manager) pairCode(raw json.RawMessage) (any, error) {
	var a struct {
		Instance string `json:"instance"`
		Phone    string `json:"phone"`
	}
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	_, client, err := m.live(a.Instance, StatusQR)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.timings.Pair)
	defer cancel()
	code, err := client.PairPhone(ctx, a.Phone, true, whatsmeow.PairClientChrome, "Chrome (Linux)")
	if err != nil {
		return nil, opErr(KindFailed, "WhatsApp refused the pairing code request for %s: %v", a.Phone, err)
	}
	return code, nil
}

func (m *Manager) send(raw json.RawMessage) (any, error) {
	var a struct {
		Instance  string `json:"instance"`
		JID       string `json:"jid"`
		Text      string `json:"text"`
		MessageID string `json:"message_id"`
	}
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	s, client, err := m.live(a.Instance, StatusReady)
	if err != nil {
		return nil, err
	}
	to, err := types.ParseJID(a.JID)
	if err != nil || to.User == "" {
		return nil, opErr(KindBadRequest, "not a user JID: %q", a.JID)
	}
	id := a.MessageID
	if id == "" {
		id = client.GenerateMessageID()
	}
	// Our own deadline (whatsmeow waits 75 s for the server's ack), under the adapter's 25 s RPC timeout.
	ctx, cancel := context.WithTimeout(s.ctx, m.timings.Send)
	defer cancel()
	// Recorded before it goes out: a receipt can arrive before SendMessage returns.
	if err := m.store.RecordSent(ctx, a.Instance, id); err != nil {
		return nil, opErr(KindSendFailed, "could not record message %s before sending: %v", id, err)
	}
	resp, err := client.SendMessage(ctx, to, &waE2E.Message{Conversation: proto.String(a.Text)},
		whatsmeow.SendRequestExtra{ID: id})
	if err != nil {
		return nil, opErr(sendErrorKind(err), "WhatsApp failed the send of %s: %v", id, err)
	}
	s.emitStatus(resp.ID, MessageSent, resp.Timestamp) // the server's ack
	return map[string]any{"id": resp.ID, "timestamp": resp.Timestamp.Unix()}, nil
}

// sendErrorKind tells a failed send from one whose outcome is unknown: no server ack in time, or the
// connection lost while waiting for it, may follow a message WhatsApp did receive.
func sendErrorKind(err error) string {
	var disconnected *whatsmeow.DisconnectedError
	if errors.Is(err, whatsmeow.ErrMessageTimedOut) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) || errors.As(err, &disconnected) {
		return KindSendUnknown
	}
	return KindSendFailed
}

func (m *Manager) checkNumbers(raw json.RawMessage) (any, error) {
	var a struct {
		Instance string   `json:"instance"`
		Phones   []string `json:"phones"`
	}
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	_, client, err := m.live(a.Instance, StatusReady)
	if err != nil {
		return nil, err
	}
	queries := make([]string, len(a.Phones))
	for i, phone := range a.Phones {
		queries[i] = "+" + strings.TrimPrefix(phone, "+")
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.timings.Lookup)
	defer cancel()
	found, err := client.IsOnWhatsApp(ctx, queries)
	if err != nil {
		return nil, opErr(KindFailed, "WhatsApp did not answer the number check: %v", err)
	}
	return numbersResult(a.Phones, found), nil
}

// numbersResult maps each asked phone to its JID, or nil when it is not on WhatsApp.
func numbersResult(phones []string, found []types.IsOnWhatsAppResponse) map[string]any {
	byQuery := make(map[string]types.IsOnWhatsAppResponse, len(found))
	for _, r := range found {
		byQuery[strings.TrimPrefix(r.Query, "+")] = r
	}
	result := make(map[string]any, len(phones))
	for _, phone := range phones {
		r, ok := byQuery[strings.TrimPrefix(phone, "+")]
		if ok && r.IsIn {
			result[phone] = r.JID.ToNonAD().String()
		} else {
			result[phone] = nil
		}
	}
	return result
}
