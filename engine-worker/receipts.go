package main

import (
	"context"
	"time"

	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
)

// Message statuses of the engine port (contract/status.py MessageStatus).
const (
	MessageSent      = "SENT"
	MessageDelivered = "DELIVERED"
	MessageRead      = "READ"
	MessageFailed    = "FAILED"
)

// receiptStatus maps the receipt types that say something about a message we sent (port docstring:
// delivered → DELIVERED, read / read-self → READ, server error → FAILED). Retry, played, sender, ... say
// nothing the service tracks.
var receiptStatus = map[types.ReceiptType]string{
	types.ReceiptTypeDelivered:   MessageDelivered,
	types.ReceiptTypeRead:        MessageRead,
	types.ReceiptTypeReadSelf:    MessageRead,
	types.ReceiptTypeServerError: MessageFailed,
}

// onReceipt forwards receipts about messages this instance sent, and nothing about anyone else's
// (CONTRACT §5: no incoming-message processing): each ID is checked against the sent-ID table.
func (s *Session) onReceipt(e *events.Receipt) {
	status, ok := receiptStatus[e.Type]
	if !ok || s.m.store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	at := e.Timestamp
	if at.IsZero() {
		at = time.Now()
	}
	for _, id := range e.MessageIDs {
		ours, err := s.m.store.IsSent(ctx, s.instance, id)
		if err != nil {
			s.m.log.Warn("could not check a receipt's message", "instance_id", s.instance, "error", err.Error())
			return
		}
		if ours {
			s.emitStatus(id, status, at)
		}
	}
}

func (s *Session) emitStatus(id, status string, at time.Time) {
	s.emit("receipt", map[string]any{"message_id": id, "status": status,
		"at": float64(at.UnixMilli()) / 1000})
}
