//go:build device

package hub

import (
	"errors"
	"log/slog"

	"github.com/p2pcast/p2pcast/internal/auth"
	"github.com/p2pcast/p2pcast/internal/metrics"
)

// The device build has no hub to cluster (cmd/p2pcast leaves the hub out), and does not link
// NATS: these stand in for cluster.go so the package builds.

type cluster struct{ owned bool }

func connectCluster(ClusterConfig, *slog.Logger) (*cluster, error) {
	return nil, errors.New("cluster: not in the device build")
}

func (*cluster) start(*Server) error                                    { return nil }
func (*cluster) close()                                                 {}
func (*cluster) serverClosed()                                          {}
func (*cluster) linked(*deviceConn)                                     {}
func (*cluster) unlinked(*deviceConn)                                   {}
func (*cluster) serveViewer(*wsConn, string, authMsg, auth.Claims) bool { return false }
func (*cluster) fillDevices([]DeviceInfo)                               {}
func (*cluster) fillAdminDevices([]AdminDevice)                         {}
func (*cluster) writeMetrics(*metrics.Writer)                           {}
