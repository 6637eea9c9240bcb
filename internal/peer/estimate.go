package peer

import (
	"github.com/p2pcast/p2pcast/internal/congestion"
)

// estimator is the session's bandwidth estimator: its target paces the session's packets and
// is the viewer's estimate for the adaptation policy.
type estimator struct{ *congestion.Estimator }

// StatsAny is the estimator's view for the session's stats.
func (e estimator) StatsAny() any { return e.Stats() }

func (e *Engine) newEstimator() bandwidthEstimator {
	return estimator{congestion.NewEstimator(congestion.Config{})}
}
