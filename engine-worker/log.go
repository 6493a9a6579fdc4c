package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	waLog "go.mau.fi/whatsmeow/util/log"
)

// Logger writes one JSON line per record on stderr, in the shape the Python adapter folds into the
// service's own logs (process.py `_fold`: ts, level, logger, msg, then fields).
type Logger struct {
	mu    sync.Mutex
	out   io.Writer
	min   int
	name  string
	clock func() time.Time
}

var levelRank = map[string]int{"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}

const loggerName = "leadmaster.session_manager.engines.whatsmeow.worker"

// NewLogger logs records at `level` (debug, info, warning, error) and above.
func NewLogger(out io.Writer, level string) *Logger {
	min, ok := levelRank[strings.ToLower(level)]
	if !ok {
		min = levelRank["info"]
	}
	return &Logger{out: out, min: min, name: loggerName, clock: time.Now}
}

// Log writes one record; fields are key, value pairs.
func (l *Logger) Log(level, msg string, fields ...any) {
	if levelRank[level] < l.min {
		return
	}
	entry := map[string]any{"ts": l.clock().UTC().Format(time.RFC3339Nano), "level": level,
		"service": "session-manager-worker", "logger": l.name, "msg": msg}
	for i := 0; i+1 < len(fields); i += 2 {
		entry[fmt.Sprint(fields[i])] = fields[i+1]
	}
	line, err := json.Marshal(entry)
	if err != nil {
		line = []byte(fmt.Sprintf(`{"level":"error","msg":%q}`, "unencodable log record: "+msg))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.out.Write(append(line, '\n'))
}

// Warn logs at warning level.
func (l *Logger) Warn(msg string, fields ...any) { l.Log("warning", msg, fields...) }

// Info logs at info level.
func (l *Logger) Info(msg string, fields ...any) { l.Log("info", msg, fields...) }

// Error logs at error level.
func (l *Logger) Error(msg string, fields ...any) { l.Log("error", msg, fields...) }

// WhatsmeowLog adapts the logger for whatsmeow: its module path and instance become fields.
type WhatsmeowLog struct {
	l        *Logger
	module   string
	instance string
}

// For returns whatsmeow's logger for one instance.
func (l *Logger) For(instance string) waLog.Logger {
	return &WhatsmeowLog{l: l, module: "whatsmeow", instance: instance}
}

func (w *WhatsmeowLog) emit(level, format string, args []any) {
	if levelRank[level] < w.l.min {
		return // formatting whatsmeow's debug traffic would cost more than the rest of the worker
	}
	w.l.Log(level, fmt.Sprintf(format, args...), "module", w.module, "instance_id", w.instance)
}

func (w *WhatsmeowLog) Errorf(msg string, args ...any) { w.emit("error", msg, args) }
func (w *WhatsmeowLog) Warnf(msg string, args ...any)  { w.emit("warning", msg, args) }
func (w *WhatsmeowLog) Infof(msg string, args ...any)  { w.emit("info", msg, args) }
func (w *WhatsmeowLog) Debugf(msg string, args ...any) { w.emit("debug", msg, args) }

// Sub names a whatsmeow module (Socket, Send, ...).
func (w *WhatsmeowLog) Sub(module string) waLog.Logger {
	return &WhatsmeowLog{l: w.l, module: w.module + "/" + module, instance: w.instance}
}
