package peer

import (
	"time"

	"github.com/pion/rtcp"
)

// fixedEstimate stands in until the congestion package lands: a constant estimate.
type fixedEstimate int

func (e fixedEstimate) Sent(uint16, int, time.Time, int)           {}
func (e fixedEstimate) Feedback(*rtcp.TransportLayerCC, time.Time) {}
func (e fixedEstimate) Target() int                                { return int(e) }
func (e fixedEstimate) Probe(time.Time) (cluster, rate, bytes int) { return 0, 0, 0 }
func (e *Engine) newEstimator() bandwidthEstimator                 { return fixedEstimate(1_500_000) }
