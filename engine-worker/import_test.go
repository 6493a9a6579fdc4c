package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.mau.fi/util/random"
	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"
)

// A neonize-era store (one SQLite file per instance, whatsmeow's schema) is taken over once.
func TestImportNeonizeStores(t *testing.T) {
	h := newHarness(t, fast)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	path := filepath.Join(h.m.cfg.DataDir, "whatsmeow", "legacy.sqlite3")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	old := sqlstore.NewWithDB(db, "sqlite", nil)
	if err := old.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	device := old.NewDevice()
	id := types.JID{User: "5491100000077", Server: types.DefaultUserServer, Device: 3}
	device.ID = &id
	device.PushName = "Legacy"
	device.Account = &waAdv.ADVSignedDeviceIdentity{Details: random.Bytes(32), AccountSignature: random.Bytes(64),
		AccountSignatureKey: random.Bytes(32), DeviceSignature: random.Bytes(64)}
	if err := old.PutDevice(ctx, device); err != nil {
		t.Fatal(err)
	}
	_ = old.Close()

	if n := h.m.ImportNeonizeStores(); n != 1 {
		t.Fatalf("imported %d stores", n)
	}
	jid, err := h.m.store.MappedJID(ctx, "legacy")
	if err != nil || jid != id {
		t.Fatalf("mapped %v (%v)", jid, err)
	}
	loaded, err := h.m.store.DeviceFor(ctx, "legacy")
	if err != nil || loaded.ID == nil || *loaded.ID != id || loaded.PushName != "Legacy" ||
		loaded.IdentityKey.Pub == nil || *loaded.IdentityKey.Pub != *device.IdentityKey.Pub {
		t.Fatalf("device not carried over: %+v (%v)", loaded, err)
	}
	if _, err := os.Stat(path + ".imported"); err != nil {
		t.Fatal("the old store must be renamed once imported")
	}
	if n := h.m.ImportNeonizeStores(); n != 0 {
		t.Fatalf("imported again: %d", n)
	}
}
