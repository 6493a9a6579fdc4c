package main

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

const phoneJID = "5491123456789:12@s.whatsapp.net"

var fast = Timings{FirstQR: 300 * time.Millisecond, NextQR: 100 * time.Millisecond,
	DialTimeout: 5 * time.Second, Send: time.Second, Pair: time.Second, Logout: time.Second, Lookup: time.Second}

func TestEventsToStatuses(t *testing.T) {
	cases := []struct {
		name     string
		steps    []Step
		want     []string
		terminal bool
	}{
		{"qr then pair success then ready", []Step{
			{Event: "QR", Codes: []string{"2@a", "2@b"}},
			{Sleep: 0.02},
			{Event: "PairSuccess", JID: phoneJID},
			{Event: "Connected"},
		}, []string{"QR_REQUIRED", "AUTHENTICATED", "READY"}, false},
		{"logged out", []Step{{Event: "Connected"}, {Event: "LoggedOut", Reason: 401}},
			[]string{"READY", "ERROR/LOGGED_OUT"}, true},
		{"temporary ban", []Step{{Event: "Connected"}, {Event: "TemporaryBan", Code: 101, ExpireS: 3600}},
			[]string{"READY", "ERROR/TEMPORARY_BAN"}, true},
		{"stream replaced", []Step{{Event: "Connected"}, {Event: "StreamReplaced"}},
			[]string{"READY", "ERROR/STREAM_REPLACED"}, true},
		{"connect failure is retried", []Step{{Event: "ConnectFailure", Reason: 503, Message: "503"}},
			[]string{"ERROR/CONNECT_FAILED"}, false},
		{"client outdated needs a new build", []Step{{Event: "ClientOutdated"}},
			[]string{"ERROR/CONNECT_FAILED"}, true},
		{"pair error needs a new scan", []Step{{Event: "QR", Codes: []string{"2@a"}}, {Sleep: 0.02},
			{Event: "PairError", Error: "bad signature"}}, []string{"QR_REQUIRED", "ERROR/CONNECT_FAILED"}, true},
		{"network drop and recovery", []Step{{Event: "Connected"}, {Event: "Disconnected"}, {Event: "Connected"},
			{Event: "KeepAliveTimeout", ErrorCount: 3}, {Event: "KeepAliveRestored"}},
			[]string{"READY", "DISCONNECTED/CONNECTION_LOST", "READY", "DISCONNECTED/CONNECTION_LOST", "READY"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, fast)
			h.attach("i")
			h.drive("i", tc.steps...)
			h.waitFor("statuses", func() bool { return len(h.statuses("i")) >= len(tc.want) })
			if got := h.statuses("i"); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("statuses %v, want %v", got, tc.want)
			}
			s := h.m.session("i")
			select {
			case e := <-s.ended:
				if e.terminal != tc.terminal {
					t.Fatalf("ending terminal=%v, want %v", e.terminal, tc.terminal)
				}
			default:
				if tc.terminal {
					t.Fatal("a terminal event must end the connection")
				}
			}
		})
	}
}

func TestQRRotatesThenTimesOut(t *testing.T) {
	h := newHarness(t, fast)
	h.attach("qr")
	start := time.Now()
	h.drive("qr", Step{Event: "QR", Codes: []string{"2@one", "2@two", "2@three"}})
	h.waitFor("QR_TIMEOUT", func() bool { return last(h.statuses("qr")) == "ERROR/QR_TIMEOUT" })
	elapsed := time.Since(start)
	if elapsed < 450*time.Millisecond {
		t.Fatalf("codes did not live their time: %v", elapsed) // 300 + 100 + 100 ms
	}
	var payloads []any
	for _, f := range h.events("qr", "qr") {
		payloads = append(payloads, f["payload"])
	}
	want := []any{"2@one", "2@two", "2@three", nil}
	if !reflect.DeepEqual(payloads, want) {
		t.Fatalf("QR payloads %v, want %v", payloads, want)
	}
	first := h.events("qr", "qr")[0]["expires_at"].(float64)
	if ttl := first - float64(start.UnixMilli())/1000; ttl < 0.25 || ttl > 0.4 {
		t.Fatalf("first code expires in %.3fs, want the first-code lifetime", ttl)
	}
	if got := h.statuses("qr"); !reflect.DeepEqual(got, []string{"QR_REQUIRED", "ERROR/QR_TIMEOUT"}) {
		t.Fatalf("statuses %v", got)
	}
}

func TestPairSuccessRemembersTheDeviceAndReportsTheAccount(t *testing.T) {
	h := newHarness(t, DefaultTimings)
	h.attach("p")
	h.drive("p", Step{Event: "QR", Codes: []string{"2@x"}}, Step{Sleep: 0.02},
		Step{Event: "PairSuccess", JID: phoneJID})
	h.waitFor("paired", func() bool { return len(h.events("p", "paired")) == 1 })
	account := h.events("p", "paired")[0]["account"].(map[string]any)
	if account["jid"] != "5491123456789@s.whatsapp.net" || account["phone"] != "5491123456789" {
		t.Fatalf("account %v", account)
	}
	jid, err := h.m.store.MappedJID(h.m.ctx, "p")
	if err != nil || jid.String() != phoneJID {
		t.Fatalf("mapped %v %v", jid, err)
	}
	// The QR is withdrawn once scanned.
	qrs := h.events("p", "qr")
	if qrs[len(qrs)-1]["payload"] != nil {
		t.Fatalf("QR still shown after pairing: %v", qrs)
	}
}

func TestLoggedOutDeletesTheStoredDevice(t *testing.T) {
	h := newHarness(t, fast)
	if _, err := h.call("test_seed", map[string]any{"instances": []string{"gone"}, "first_user": 5491100000001}); err != nil {
		t.Fatal(err)
	}
	h.attach("gone")
	h.drive("gone", Step{Event: "Connected"})
	h.waitFor("READY", func() bool { return last(h.statuses("gone")) == "READY" })
	account := h.events("gone", "paired")[0]["account"].(map[string]any)
	if account["push_name"] != "Seeded gone" {
		t.Fatalf("account from the stored device: %v", account)
	}
	h.drive("gone", Step{Event: "LoggedOut", Reason: 401})
	h.waitFor("unpaired", func() bool { return len(h.events("gone", "unpaired")) == 1 })
	h.waitFor("device deleted", func() bool {
		has, err := h.m.store.HasDevice(h.m.ctx, "gone")
		return err == nil && !has
	})
}

func TestReceiptsOnlyForOurOwnMessages(t *testing.T) {
	h := newHarness(t, fast)
	h.attach("r")
	if err := h.m.store.RecordSent(h.m.ctx, "r", "3EB0OURS"); err != nil {
		t.Fatal(err)
	}
	chat := "5491100000000@s.whatsapp.net"
	h.drive("r",
		Step{Event: "Receipt", IDs: []string{"3EB0OURS", "INCOMING1"}, Type: "", Chat: chat, Timestamp: 1700000000},
		Step{Event: "Receipt", IDs: []string{"3EB0OURS"}, Type: "read", Chat: chat, Timestamp: 1700000001},
		Step{Event: "Receipt", IDs: []string{"3EB0OURS"}, Type: "retry", Chat: chat},
		Step{Event: "Receipt", IDs: []string{"INCOMING2"}, Type: "read-self", Chat: chat},
		Step{Event: "Receipt", IDs: []string{"3EB0OURS"}, Type: "server-error", Chat: chat, Timestamp: 1700000002},
	)
	got := []string{}
	for _, f := range h.events("r", "receipt") {
		got = append(got, f["message_id"].(string)+" "+f["status"].(string))
	}
	want := []string{"3EB0OURS DELIVERED", "3EB0OURS READ", "3EB0OURS FAILED"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("receipts %v, want %v", got, want)
	}
	if at := h.events("r", "receipt")[0]["at"].(float64); at != 1700000000 {
		t.Fatalf("receipt time %v", at)
	}
}

func TestLiveOperationsNeedALiveSession(t *testing.T) {
	h := newHarness(t, fast)
	for _, op := range []string{"send", "pair_code", "check_numbers"} {
		_, err := h.call(op, map[string]any{"instance": "nobody", "jid": "1@s.whatsapp.net", "phone": "1"})
		oe, ok := err.(*OpError)
		if !ok || oe.Kind != KindNotReady {
			t.Fatalf("%s: %v", op, err)
		}
	}
	h.attach("undialed")
	h.drive("undialed", Step{Event: "QR", Codes: []string{"2@x"}})
	h.waitFor("QR", func() bool { return last(h.statuses("undialed")) == "QR_REQUIRED" })
	if _, err := h.call("pair_code", map[string]any{"instance": "undialed", "phone": "1"}); err == nil ||
		!strings.Contains(err.Error(), "QR_REQUIRED") && err.(*OpError).Kind != KindNotReady {
		t.Fatalf("a never-dialed client cannot pair: %v", err)
	}
}

func TestTestHooksAreRefusedUnlessEnabled(t *testing.T) {
	h := newHarness(t, fast)
	h.m.cfg.TestHooks = false
	if _, err := h.call("test_attach", map[string]any{"instance": "x"}); err == nil {
		t.Fatal("test_attach must be refused")
	}
}
