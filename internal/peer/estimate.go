package peer

import (
	"github.com/p2pcast/p2pcast/internal/congestion"
)

// estimator is the session's bandwidth estimator: its target paces the session's packets and
// is the viewer's estimate for the adaptation policy.
type estimator struct{ *congestion.Estimator }

// StatsAny is the estimator's view for the session's stats.
func (e estimator) StatsAny() any { return e.Stats() }

// minEstimate is the lowest estimate: below the policy's lowest encoder rate, so a path that
// takes less than that still paces what it can.
const minEstimate = 50_000

func (e *Engine) newEstimator() bandwidthEstimator {
	return estimator{congestion.NewEstimator(congestion.Config{Min: minEstimate})}
}
