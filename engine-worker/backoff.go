package main

import (
	"math"
	"math/rand/v2"
	"time"
)

// Jitter spreads each redial by ±20 % so that many sessions never retry in lockstep.
const Jitter = 0.2

// NominalDelay is the un-jittered delay before retry `attempt` (1-based): base, 2·base, 4·base, ... up to cap.
func NominalDelay(attempt int, base, cap float64) float64 {
	exp := attempt - 1
	if exp < 0 {
		exp = 0
	}
	if exp > 30 {
		exp = 30
	}
	return math.Min(cap, base*math.Pow(2, float64(exp)))
}

// Delay is NominalDelay spread by ±20 %, never above the cap.
func Delay(attempt int, base, cap float64, rnd func() float64) time.Duration {
	if rnd == nil {
		rnd = rand.Float64
	}
	spread := 1 - Jitter + 2*Jitter*rnd()
	return seconds(math.Min(cap, NominalDelay(attempt, base, cap)*spread))
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
