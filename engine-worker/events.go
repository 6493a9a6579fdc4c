package main

import (
	"context"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
)

// handler is what the session registers on its client: events of an older client are dropped.
func (s *Session) handler(client *whatsmeow.Client) func(any) {
	return func(evt any) {
		if s.currentClient() != client {
			return
		}
		s.handle(client, evt)
	}
}

// handle turns one whatsmeow event into statuses (CONTRACT §2.2; table in docs/whatsmeow.md).
func (s *Session) handle(client *whatsmeow.Client, evt any) {
	switch e := evt.(type) {
	case *events.QR:
		s.onQR(e.Codes)
	case *events.PairSuccess:
		s.setStatus(StatusAuthenticated, "", nil)
		s.paired(e.ID, e.BusinessName)
	case *events.PairError:
		s.m.log.Warn("pairing failed", "instance_id", s.instance, "error", errText(e.Error))
		s.halt(StatusError, ReasonConnectFailed, true) // the user must scan again: no automatic retry
	case *events.QRScannedWithoutMultidevice:
		s.m.log.Warn("QR scanned by a phone without multi-device", "instance_id", s.instance)
	case *events.Connected:
		s.onConnected(client)
	case *events.Disconnected:
		s.onConnectionLost(client)
	case *events.KeepAliveTimeout:
		if status, _ := s.state(); status == StatusReady {
			s.setStatus(StatusDisconnected, ReasonConnectionLost, nil)
		}
	case *events.KeepAliveRestored:
		if status, _ := s.state(); status == StatusDisconnected {
			s.setStatus(StatusReady, "", nil)
		}
	case *events.LoggedOut:
		s.m.log.Warn("logged out by WhatsApp", "instance_id", s.instance, "on_connect", e.OnConnect,
			"why", int(e.Reason))
		s.onLoggedOut()
	case *events.StreamReplaced:
		s.halt(StatusError, ReasonStreamReplaced, true)
	case *events.TemporaryBan:
		s.m.log.Warn("temporarily banned by WhatsApp", "instance_id", s.instance, "code", int(e.Code),
			"expires_in_s", e.Expire.Seconds())
		s.halt(StatusError, ReasonTemporaryBan, true)
	case *events.ConnectFailure:
		s.m.log.Warn("WhatsApp refused the connection", "instance_id", s.instance, "why", int(e.Reason),
			"message", e.Message)
		s.halt(StatusError, ReasonConnectFailed, false) // redialed with backoff
	case *events.ClientOutdated:
		s.halt(StatusError, ReasonConnectFailed, true)
	case *events.Receipt:
		s.onReceipt(e)
	}
}

func (s *Session) onConnected(client *whatsmeow.Client) {
	s.mu.Lock()
	s.attempt = 0
	s.mu.Unlock()
	if id := client.Store.ID; id != nil && id.User != "" {
		s.paired(*id, client.Store.PushName)
	}
	s.setStatus(StatusReady, "", nil)
}

func (s *Session) onConnectionLost(client *whatsmeow.Client) {
	status, _ := s.state()
	switch {
	case status == StatusReady || status == StatusAuthenticated:
		// Paired: whatsmeow reconnects by itself; Connected / KeepAliveRestored bring READY back.
		s.setStatus(StatusDisconnected, ReasonConnectionLost, nil)
	case client.Store.ID == nil:
		// Not paired yet: whatsmeow never reconnects such a client; we redial it (a fresh QR).
		s.end(ending{cause: "connection lost before pairing"})
	}
}

func (s *Session) onLoggedOut() {
	s.mu.Lock()
	s.account = nil
	s.mu.Unlock()
	s.halt(StatusError, ReasonLoggedOut, true)
	s.emit("unpaired", nil)
	s.forgetCredentialsLater()
}

// forgetCredentialsLater deletes the device off the event goroutine (the store may be slow).
func (s *Session) forgetCredentialsLater() {
	if s.m.store == nil {
		return
	}
	s.m.wg.Add(1)
	go func() {
		defer s.m.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.m.store.Forget(ctx, s.instance); err != nil {
			s.m.log.Warn("could not delete credentials", "instance_id", s.instance, "error", err.Error())
		}
	}()
}

// paired records the account and the instance → device JID mapping, and tells the engine.
func (s *Session) paired(jid types.JID, pushName string) {
	if jid.User == "" {
		return
	}
	account := map[string]any{"jid": jid.ToNonAD().String(), "phone": jid.User, "push_name": nilIfEmpty(pushName)}
	s.mu.Lock()
	if pushName == "" && s.account != nil && s.account["jid"] == account["jid"] {
		account["push_name"] = s.account["push_name"]
	}
	s.account = account
	s.mu.Unlock()
	if s.m.store != nil {
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		defer cancel()
		if err := s.m.store.Remember(ctx, s.instance, jid); err != nil {
			s.m.log.Error("could not remember the instance's device", "instance_id", s.instance,
				"jid", jid.String(), "error", err.Error())
		}
	}
	s.emit("paired", map[string]any{"account": account})
}

func (s *Session) accountInfo() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.account
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
