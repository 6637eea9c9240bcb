package codec

// Audio codecs carry one frame per RTP packet: an Opus packet (RFC 7587) or a run of G.711
// samples (RFC 3551), so packetizing is a copy into the shared payload buffer.

func wholeFrame(frame []byte, _ int, out *Payloads) {
	out.Reset()
	if len(frame) == 0 {
		return
	}
	out.Buf = append(out.Buf, frame...)
	out.end()
}

// opusFmtp: in-band FEC helps a lossy last hop; stereo only when the track has two channels.
func opusFmtp(p Params) string {
	if p.Channels == 2 {
		return "minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1"
	}
	return "minptime=10;useinbandfec=1"
}

func noFmtp(Params) string { return "" }
