package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	_ "github.com/lib/pq"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"
	_ "modernc.org/sqlite"
)

// Store is the one database of every device of this node: one sqlstore.Container (one bounded pool)
// plus our own tables: which device JID each instance is paired as (devices have no JID before pairing,
// and any node sharing the database must find an instance's device), and the IDs of the messages we
// sent (so that only receipts about our own messages are ever forwarded).
type Store struct {
	DB        *sql.DB
	Container *sqlstore.Container
	Postgres  bool
	dialect   string
}

// SQLiteFile is the default store, in the data dir.
const SQLiteFile = "whatsmeow.sqlite3"

var schema = []string{
	`CREATE TABLE IF NOT EXISTS leadmaster_wa_instance (
		instance_id TEXT PRIMARY KEY,
		jid         TEXT NOT NULL,
		updated_at  BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS leadmaster_wa_sent (
		instance_id TEXT NOT NULL,
		message_id  TEXT NOT NULL,
		sent_at     BIGINT NOT NULL,
		PRIMARY KEY (instance_id, message_id))`,
}

// SentRetention bounds the sent-ID table (statuses are kept 30 days on the service side).
const SentRetention = 31 * 24 * time.Hour

// OpenStore opens SQLite in dataDir, or PostgreSQL at storeURL, with at most `pool` connections.
func OpenStore(ctx context.Context, dataDir, storeURL string, pool int, log *Logger) (*Store, error) {
	var dialect, dsn string
	if storeURL != "" {
		dialect, dsn = "postgres", PostgresDSN(storeURL)
	} else {
		dir := filepath.Join(dataDir, "whatsmeow")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		dialect = "sqlite"
		// WAL + busy timeout: many goroutines share the file; immediate transactions never deadlock on upgrade.
		dsn = "file:" + filepath.Join(dir, SQLiteFile) +
			"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_txlock=immediate"
	}
	db, err := sql.Open(dialect, dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s store: %w", dialect, err)
	}
	if pool < 1 {
		pool = 1
	}
	// The bound that matters: whatever the number of sessions or dials, never more server connections.
	db.SetMaxOpenConns(pool)
	db.SetMaxIdleConns(pool)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &Store{DB: db, Postgres: dialect == "postgres", dialect: dialect}
	s.Container = sqlstore.NewWithDB(db, dialect, log.For("store"))
	if err := s.Container.Upgrade(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("upgrade the whatsmeow store: %w", err)
	}
	for _, stmt := range schema {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("create our tables: %w", err)
		}
	}
	return s, nil
}

var driverPrefix = regexp.MustCompile(`^postgres(?:ql)?\+\w+://`)

// PostgresDSN turns a SQLAlchemy-style URL into lib/pq's: no `+driver`, TLS off on a loopback host
// (lib/pq defaults to sslmode=require, which a local server without TLS refuses).
func PostgresDSN(raw string) string {
	raw = driverPrefix.ReplaceAllString(raw, "postgresql://")
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	host := u.Hostname()
	if q.Get("sslmode") == "" && (host == "" || host == "localhost" || host == "127.0.0.1" || host == "::1") {
		q.Set("sslmode", "disable")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func (s *Store) q(query string) string {
	if s.Postgres {
		return query
	}
	return strings.NewReplacer("$1", "?1", "$2", "?2", "$3", "?3").Replace(query)
}

// DeviceFor loads the instance's paired device, or a new unpaired one.
func (s *Store) DeviceFor(ctx context.Context, instance string) (*store.Device, error) {
	jid, err := s.MappedJID(ctx, instance)
	if err != nil {
		return nil, err
	}
	if !jid.IsEmpty() {
		device, err := s.Container.GetDevice(ctx, jid)
		if err != nil {
			return nil, fmt.Errorf("load device %s: %w", jid, err)
		}
		if device != nil {
			return device, nil
		}
	}
	return s.Container.NewDevice(), nil
}

// MappedJID is the device JID the instance is paired as (empty when none).
func (s *Store) MappedJID(ctx context.Context, instance string) (types.JID, error) {
	var raw string
	err := s.DB.QueryRowContext(ctx, s.q(`SELECT jid FROM leadmaster_wa_instance WHERE instance_id = $1`),
		instance).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return types.EmptyJID, nil
	} else if err != nil {
		return types.EmptyJID, fmt.Errorf("read the instance map: %w", err)
	}
	return types.ParseJID(raw)
}

// Remember maps the instance to its device JID (after pairing).
func (s *Store) Remember(ctx context.Context, instance string, jid types.JID) error {
	_, err := s.DB.ExecContext(ctx, s.q(`INSERT INTO leadmaster_wa_instance (instance_id, jid, updated_at)
		VALUES ($1, $2, $3) ON CONFLICT (instance_id) DO UPDATE SET jid = excluded.jid, updated_at = excluded.updated_at`),
		instance, jid.String(), time.Now().Unix())
	return err
}

// Forget deletes the instance's mapping and its device (whatsmeow's other tables cascade).
func (s *Store) Forget(ctx context.Context, instance string) error {
	jid, err := s.MappedJID(ctx, instance)
	if err != nil {
		return err
	}
	if !jid.IsEmpty() {
		if _, err := s.DB.ExecContext(ctx, s.q(`DELETE FROM whatsmeow_device WHERE jid = $1`), jid.String()); err != nil {
			return fmt.Errorf("delete device %s: %w", jid, err)
		}
	}
	_, err = s.DB.ExecContext(ctx, s.q(`DELETE FROM leadmaster_wa_instance WHERE instance_id = $1`), instance)
	if err == nil {
		_, err = s.DB.ExecContext(ctx, s.q(`DELETE FROM leadmaster_wa_sent WHERE instance_id = $1`), instance)
	}
	return err
}

// HasDevice tells whether the instance has stored credentials (tests, benches).
func (s *Store) HasDevice(ctx context.Context, instance string) (bool, error) {
	jid, err := s.MappedJID(ctx, instance)
	if err != nil || jid.IsEmpty() {
		return false, err
	}
	device, err := s.Container.GetDevice(ctx, jid)
	return device != nil, err
}

// RecordSent notes a message ID of ours before it goes out, so that its receipts are recognised.
func (s *Store) RecordSent(ctx context.Context, instance, id string) error {
	_, err := s.DB.ExecContext(ctx, s.q(`INSERT INTO leadmaster_wa_sent (instance_id, message_id, sent_at)
		VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`), instance, id, time.Now().Unix())
	return err
}

// IsSent tells whether this instance sent the message (receipts about anything else are dropped).
func (s *Store) IsSent(ctx context.Context, instance, id string) (bool, error) {
	var one int
	err := s.DB.QueryRowContext(ctx, s.q(`SELECT 1 FROM leadmaster_wa_sent WHERE instance_id = $1 AND message_id = $2`),
		instance, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// PruneSent drops sent IDs older than the retention.
func (s *Store) PruneSent(ctx context.Context) error {
	_, err := s.DB.ExecContext(ctx, s.q(`DELETE FROM leadmaster_wa_sent WHERE sent_at < $1`),
		time.Now().Add(-SentRetention).Unix())
	return err
}

// Close closes the pool.
func (s *Store) Close() error { return s.DB.Close() }
