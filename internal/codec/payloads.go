package codec

// DefaultMTU is the largest RTP payload sent: it leaves room for RTP, SRTP, UDP, IP and TURN
// headers inside a 1500-byte path MTU.
const DefaultMTU = 1200

// Payloads holds RTP payloads in one reused buffer: payload i is Buf[Ends[i-1]:Ends[i]].
type Payloads struct {
	Buf  []byte
	Ends []int
}

// Len is the number of payloads.
func (p *Payloads) Len() int { return len(p.Ends) }

// At returns payload i.
func (p *Payloads) At(i int) []byte {
	start := 0
	if i > 0 {
		start = p.Ends[i-1]
	}
	return p.Buf[start:p.Ends[i]]
}

// Reset empties p, keeping its memory.
func (p *Payloads) Reset() { p.Buf, p.Ends = p.Buf[:0], p.Ends[:0] }

func (p *Payloads) end() { p.Ends = append(p.Ends, len(p.Buf)) }
