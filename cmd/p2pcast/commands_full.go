//go:build !device

package main

import (
	"context"
	"fmt"
	"io"

	"github.com/p2pcast/p2pcast/internal/bench"
)

// The whole program: what a device runs, and the hub, hub enrollment and the benchmarks.
var commands = []command{
	{"device", "run a device: capture/ingest H.264 and serve it to viewers", runDevice},
	{"view", "watch a device from the terminal (WHEP, WebSocket, or through a hub)", runView},
	{"fetch", "list a device's recordings, fetch one over a data channel (resumable, checksummed)", runFetch},
	{"record", "start or stop recording on a device, or show its recorder (peer to peer, the control grant)", runRecord},
	{"hub", "run the rendezvous hub: device links, viewer tokens, signaling relay, STUN/TURN", runHub},
	{"token", "mint a viewer token from a hub's key material", runToken},
	{"device-key", "enroll a device at a hub (device-key add ID) and print its secret key", runDeviceKey},
	{"bench", "benchmarks: bench viewers (load), bench latency (capture → present in Chromium), bench avsync (a/v sync in Chromium), bench devices (device links from one address across a hub restart)", bench.Run},
	{"config", "config print COMMAND [flags]: the effective configuration (file, environment, flags)", runConfig},
	{"version", "print the version", runVersion},
}

// configured are the commands that read a configuration file (--config).
var configured = map[string]func(context.Context, []string, io.Writer, io.Writer) error{"device": runDevice, "hub": runHub}

// defaultDataDir is where the hub keeps its keys unless --data says otherwise.
func defaultDataDir() string { return stateDir("hub") }

func runVersion(_ context.Context, _ []string, out, _ io.Writer) error {
	fmt.Fprintln(out, "p2pcast", version)
	return nil
}
