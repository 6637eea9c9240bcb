// Package hub is the rendezvous server (docs/hub.md): devices keep one outbound WebSocket to it
// and prove who they are with their Ed25519 key; viewers come with signed, scoped, expiring
// tokens; the hub relays each viewer session's signaling to its device, hands both sides
// short-lived STUN/TURN credentials, limits abuse per source address and writes an audit log.
// Link is the device's side of the same protocol.
//
// A hub is a Config: Validate checks it, Run runs it. Run's components (package lifecycle),
// each the owner of what it starts, start in this order and stop in reverse, within bounds,
// when the context ends or one of them fails:
//
//   - audit log: DataDir/audit.jsonl, rotated; closed last, after the relay's last summaries.
//   - embedded TURN: the STUN/TURN server (internal/turnserver), unless TURN.Off; an
//     ExternalTURN's URLs replace its own in what the hub hands out.
//   - cluster: with Config.Cluster, the connection to NATS that joins this hub to its other
//     instances (cluster.go, docs/cluster.md); left after the HTTP server has stopped, so the
//     other instances hear about the sessions that ended with it.
//   - HTTP server: the listener with its per-source connection cap, the relay (Server: device
//     links, viewer sessions, the web app) and the http.Server. Its stop ends the links first
//     (viewers hear that the hub is restarting; their media goes on), then shuts the server down.
//   - revocation watcher: rereads the store's revocation list every second, tells the devices
//     and ends the hub's sessions of revoked tokens.
//   - announcement: logs that the hub listens and calls Run's ready.
//
// New builds the relay alone, with its own revocation watcher, for tests and embedding.
package hub
