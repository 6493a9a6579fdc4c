// Command leadmaster-whatsmeow-worker is the engine worker of the session-manager: every WhatsApp
// session of a node in one process, on go.mau.fi/whatsmeow, driven over the pipe protocol of
// protocol.go by the Python adapter (src/leadmaster/session_manager/engines/whatsmeow/).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

type initArgs struct {
	Config   Config `json:"config"`
	LogLevel string `json:"log_level"`
}

func main() {
	// Frames go out on a duplicate of the original stdout; fd 1 then points at stderr, so that nothing
	// printed by a library (or a Go crash dump) can ever corrupt a frame.
	framesFD, err := unix.Dup(1)
	if err != nil {
		os.Exit(3)
	}
	if err := unix.Dup3(2, 1, 0); err != nil {
		os.Exit(3)
	}
	frames := os.NewFile(uintptr(framesFD), "frames")
	os.Exit(serve(os.Stdin, frames, os.Stderr))
}

// serve runs the protocol until stdin closes or the parent asks for shutdown; returns the exit code.
func serve(in io.Reader, out io.Writer, logOut io.Writer) int {
	reader := bufio.NewReaderSize(in, 64*1024)
	emitter := NewEmitter(out)
	body, err := ReadFrame(reader)
	if err != nil {
		return 0 // the engine went away before init
	}
	var req Request
	var args initArgs
	if json.Unmarshal(body, &req) != nil || req.Op != "init" || json.Unmarshal(req.Args, &args) != nil {
		return 2
	}
	log := NewLogger(logOut, args.LogLevel)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	store, err := OpenStore(ctx, args.Config.DataDir, args.Config.StoreURL, args.Config.DBConnections, log)
	cancel()
	if err != nil {
		log.Error("could not open the store", "error", err.Error())
		emitter.Reply(req.ID, nil, opErr(KindFailed, "could not open the store: %v", err))
		return 1
	}
	defer store.Close()
	manager := NewManager(args.Config, DefaultTimings, store, emitter, log)
	imported := manager.ImportNeonizeStores()
	manager.wg.Add(1)
	go manager.pruneLoop()
	manager.wg.Add(1)
	go manager.statsLoop(5 * time.Second)
	manager.wg.Add(1)
	go manager.leaseWatchdog()
	emitter.Reply(req.ID, map[string]any{"pid": os.Getpid(), "imported": imported}, nil)

	var calls sync.WaitGroup
	for {
		body, err := ReadFrame(reader)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				log.Error("bad frame from the engine", "error", err.Error())
			}
			break // the engine is gone: stop every session and exit
		}
		var req Request
		if err := json.Unmarshal(body, &req); err != nil {
			log.Error("unreadable request", "error", err.Error())
			continue
		}
		switch req.Op {
		case "shutdown":
			var a struct {
				Budget float64 `json:"budget"`
			}
			_ = json.Unmarshal(req.Args, &a)
			n := manager.Shutdown(seconds(a.Budget))
			emitter.Reply(req.ID, map[string]any{"stopped": n}, nil)
			return 0
		case "lease":
			// On the reader goroutine: leases apply in the order sent, and before any connect behind them
			// (a restarted worker gets its deadline before the sessions it resumes).
			result, err := manager.Handle(req.Op, req.Args)
			emitter.Reply(req.ID, result, err)
			continue
		case "test_hang":
			// On the reader goroutine on purpose: a worker that reads nothing more is what a hang is.
			result, err := manager.Handle(req.Op, req.Args)
			emitter.Reply(req.ID, result, err)
			continue
		}
		calls.Add(1)
		go func() {
			defer calls.Done()
			result, err := manager.Handle(req.Op, req.Args)
			emitter.Reply(req.ID, result, err)
		}()
	}
	manager.Shutdown(3 * time.Second)
	return 0
}
