package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"
)

// ImportNeonizeStores moves devices of the former neonize engine (one SQLite store per instance,
// <data_dir>/whatsmeow/<instance>.sqlite3, whatsmeow's own schema inside) into the shared store once:
// the device row (its keys and identity, enough to log in without a new QR) and our instance map. The
// old file is renamed *.imported. Signal sessions are not copied: whatsmeow re-establishes them.
func (m *Manager) ImportNeonizeStores() int {
	dir := filepath.Join(m.cfg.DataDir, "whatsmeow")
	paths, _ := filepath.Glob(filepath.Join(dir, "*.sqlite3"))
	imported := m.importNeonizeMap()
	for _, path := range paths {
		name := filepath.Base(path)
		if name == SQLiteFile {
			continue
		}
		instance := strings.TrimSuffix(name, ".sqlite3")
		if err := m.importOne(instance, path); err != nil {
			m.log.Warn("could not import a neonize store", "instance_id", instance, "path", path,
				"error", err.Error())
			continue
		}
		imported++
	}
	return imported
}

func (m *Manager) importOne(instance, path string) error {
	ctx, cancel := context.WithTimeout(m.ctx, 20*time.Second)
	defer cancel()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	old := sqlstore.NewWithDB(db, "sqlite", nil)
	defer old.Close()
	if err := old.Upgrade(ctx); err != nil {
		return err
	}
	device, err := old.GetFirstDevice(ctx)
	if err != nil {
		return err
	}
	if device.ID != nil {
		device.Initialized = false // re-bound to the shared container by PutDevice
		if err := m.store.Container.PutDevice(ctx, device); err != nil {
			return err
		}
		if err := m.store.Remember(ctx, instance, *device.ID); err != nil {
			return err
		}
	}
	return os.Rename(path, path+".imported")
}

// importNeonizeMap takes over the former engine's PostgreSQL instance map (devices.json): the devices
// themselves are already in the shared database, neonize having used whatsmeow's schema there too.
func (m *Manager) importNeonizeMap() int {
	path := filepath.Join(m.cfg.DataDir, "whatsmeow", "devices.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var entries map[string]struct {
		User   string `json:"user"`
		Server string `json:"server"`
		Device uint16 `json:"device"`
	}
	if err := json.Unmarshal(raw, &entries); err != nil {
		m.log.Warn("unreadable neonize device map", "path", path, "error", err.Error())
		return 0
	}
	ctx, cancel := context.WithTimeout(m.ctx, 20*time.Second)
	defer cancel()
	n := 0
	for instance, e := range entries {
		jid := types.JID{User: e.User, Server: e.Server, Device: e.Device}
		if err := m.store.Remember(ctx, instance, jid); err != nil {
			m.log.Warn("could not import a device mapping", "instance_id", instance, "error", err.Error())
			return n
		}
		n++
	}
	_ = os.Rename(path, path+".imported")
	return n
}
