package main

// The pipe protocol shared with the Python adapter (src/.../whatsmeow/protocol.py): every frame is a
// 4-byte big-endian length followed by one JSON object.
//
//	parent → worker (stdin):  {"id": n, "op": "...", "args": {...}}
//	worker → parent (frames): {"id": n, "ok": true, "result": ...}
//	                       or {"id": n, "ok": false, "error": <kind>, "message": "..."}
//	                   events {"ev": "status"|"qr"|"paired"|"unpaired"|"ended"|"receipt", "instance": ..., "gen": ..., ...}

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// MaxFrame matches protocol.MAX_FRAME on the Python side.
const MaxFrame = 8 * 1024 * 1024

// Error kinds a reply may carry; the Python engine maps them onto the port's exceptions.
const (
	KindNotReady   = "not_ready"
	KindSendFailed = "send_failed"
	// The send may have reached WhatsApp (no ack in time, connection lost while waiting for it).
	KindSendUnknown = "send_outcome_unknown"
	KindFailed      = "failed"
	KindBadRequest  = "bad_request"
)

// Request is one call from the parent.
type Request struct {
	ID   int64           `json:"id"`
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args"`
}

// OpError is an operation's failure with the kind the parent maps onto an exception.
type OpError struct {
	Kind    string
	Message string
}

func (e *OpError) Error() string { return e.Message }

func opErr(kind, format string, args ...any) *OpError {
	return &OpError{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// ReadFrame reads one length-prefixed JSON frame.
func ReadFrame(r io.Reader) ([]byte, error) {
	var header [4]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(header[:])
	if size > MaxFrame {
		return nil, fmt.Errorf("frame of %d bytes is over the %d limit", size, MaxFrame)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return body, nil
}

// Emitter writes frames from any goroutine; one lock keeps frames whole.
type Emitter struct {
	mu  sync.Mutex
	out *bufio.Writer
	err error
}

// NewEmitter writes frames to w.
func NewEmitter(w io.Writer) *Emitter {
	return &Emitter{out: bufio.NewWriterSize(w, 64*1024)}
}

// Emit sends one frame; after a write error (the parent is gone) it drops everything.
func (e *Emitter) Emit(message map[string]any) {
	body, err := json.Marshal(message)
	if err != nil {
		body, _ = json.Marshal(map[string]any{"id": message["id"], "ok": false, "error": KindFailed,
			"message": "unencodable result: " + err.Error()})
	}
	var header [4]byte
	binary.BigEndian.PutUint32(header[:], uint32(len(body)))
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return
	}
	if _, err := e.out.Write(header[:]); err == nil {
		_, err = e.out.Write(body)
		if err == nil {
			err = e.out.Flush()
		}
		e.err = err
	} else {
		e.err = err
	}
}

// Reply answers request id with a result or an error.
func (e *Emitter) Reply(id int64, result any, err error) {
	if err == nil {
		e.Emit(map[string]any{"id": id, "ok": true, "result": result})
		return
	}
	kind := KindFailed
	if oe, ok := err.(*OpError); ok {
		kind = oe.Kind
	}
	e.Emit(map[string]any{"id": id, "ok": false, "error": kind, "message": err.Error()})
}
