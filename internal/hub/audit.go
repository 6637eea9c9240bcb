package hub

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Audit events (docs/hub.md).
const (
	EventDeviceConnected    = "device_connected"
	EventDeviceDisconnected = "device_disconnected"
	EventAuthFailed         = "auth_failed"
	EventSessionStarted     = "session_started"
	EventSessionResumed     = "session_resumed"
	EventSessionEnded       = "session_ended"
	EventRefused            = "refused"
)

// AuditEntry is one line of the audit log. It never holds a token or a key: tokens are
// named by their id.
type AuditEntry struct {
	Time    time.Time `json:"time"`
	Event   string    `json:"event"`
	Remote  string    `json:"remote,omitempty"`
	Device  string    `json:"device,omitempty"`
	TokenID string    `json:"token_id,omitempty"`
	Session string    `json:"session,omitempty"`
	Reason  string    `json:"reason,omitempty"`
}

// audit writes JSON lines; one write per entry, so concurrent writers never interleave.
type audit struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
}

func (a *audit) log(e AuditEntry) {
	if a.w == nil {
		return
	}
	e.Time = a.now().UTC()
	if len(e.Reason) > 300 {
		e.Reason = e.Reason[:300]
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	b = append(b, '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	_, _ = a.w.Write(b)
}
