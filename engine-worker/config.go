package main

import "time"

// Config is what the Python engine sends with `init` (engine.py `worker_config`).
type Config struct {
	DataDir       string  `json:"data_dir"`
	StoreURL      string  `json:"store_url"`
	Proxy         string  `json:"proxy"`
	BackoffBase   float64 `json:"backoff_base"`
	BackoffCap    float64 `json:"backoff_cap"`
	MaxDials      int     `json:"max_dials"`
	DBConnections int     `json:"db_connections"`
	TestHooks     bool    `json:"test_hooks"`
}

// Timings of one session; fixed in production, shortened only by Go tests.
type Timings struct {
	FirstQR     time.Duration // the first QR code lives 60 s, as whatsmeow's own QR channel has it
	NextQR      time.Duration // every next code 20 s
	DialTimeout time.Duration // a dial (websocket + noise handshake) that takes longer is abandoned
	Send        time.Duration // our own send deadline, under the adapter's 25 s RPC timeout
	Pair        time.Duration
	Logout      time.Duration
	Lookup      time.Duration
}

// DefaultTimings are the production ones.
var DefaultTimings = Timings{
	FirstQR:     60 * time.Second,
	NextQR:      20 * time.Second,
	DialTimeout: 30 * time.Second,
	Send:        20 * time.Second,
	Pair:        20 * time.Second,
	Logout:      8 * time.Second,
	Lookup:      15 * time.Second,
}

func (c *Config) normalise() {
	if c.BackoffBase <= 0 {
		c.BackoffBase = 1
	}
	if c.BackoffCap <= 0 {
		c.BackoffCap = 300
	}
	if c.MaxDials <= 0 {
		c.MaxDials = 16
	}
	if c.DBConnections <= 0 {
		c.DBConnections = 8
	}
}
