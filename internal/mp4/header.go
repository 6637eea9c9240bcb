package mp4

import (
	"math"
	"time"
)

// The file's brands: iso5 for default-base-is-moof, iso6 for version 1 tfdt, mp41 for older
// players, dash because every fragment is a self-contained media segment.
var compatibleBrands = [...]string{"iso5", "iso6", "mp41", "dash"}

// unityMatrix is the identity transformation of mvhd and tkhd.
var unityMatrix = [9]uint32{0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000}

// mp4Epoch is when ISO BMFF times count from.
var mp4Epoch = time.Date(1904, 1, 1, 0, 0, 0, 0, time.UTC)

// mp4Time converts t to seconds since 1904 (0 when unset or out of mvhd version 0's range,
// which ends in 2040).
func mp4Time(t time.Time) uint32 {
	if t.IsZero() {
		return 0
	}
	s := t.Unix() - mp4Epoch.Unix()
	if s < 0 || s > math.MaxUint32 {
		return 0
	}
	return uint32(s)
}

// appendHeader appends ftyp and moov. The moov describes the tracks and holds empty sample
// tables; its durations are 0 (unknown) and mvex announces that samples come in fragments, so
// nothing in it ever needs rewriting.
func (w *Writer) appendHeader(b *boxBuf) {
	ftyp := b.open("ftyp")
	b.str("iso5")
	b.u32(512)
	for _, brand := range compatibleBrands {
		b.str(brand)
	}
	b.close(ftyp)

	created := mp4Time(w.opts.Created)
	moov := b.open("moov")
	mvhd := b.openFull("mvhd", 0, 0)
	b.u32(created)
	b.u32(created)
	b.u32(1000) // timescale of the movie's (empty) durations
	b.u32(0)    // duration: unknown, the fragments carry it
	b.u32(0x00010000)
	b.u16(0x0100)
	b.zeros(10)
	for _, m := range unityMatrix {
		b.u32(m)
	}
	b.zeros(24)
	b.u32(uint32(len(w.tracks) + 1)) // next_track_ID
	b.close(mvhd)
	for i := range w.tracks {
		w.appendTrak(b, &w.tracks[i], created)
	}
	mvex := b.open("mvex")
	for i := range w.tracks {
		trex := b.openFull("trex", 0, 0)
		b.u32(w.tracks[i].id)
		b.u32(1) // default_sample_description_index
		b.u32(0) // default duration, size, flags: every trun says its own
		b.u32(0)
		b.u32(0)
		b.close(trex)
	}
	b.close(mvex)
	b.close(moov)
}

func (w *Writer) appendTrak(b *boxBuf, t *track, created uint32) {
	trak := b.open("trak")
	tkhd := b.openFull("tkhd", 0, 3) // enabled, in movie
	b.u32(created)
	b.u32(created)
	b.u32(t.id)
	b.u32(0)
	b.u32(0) // duration: unknown
	b.zeros(8)
	b.u16(0) // layer
	b.u16(0) // alternate_group
	if t.video {
		b.u16(0)
	} else {
		b.u16(0x0100) // full volume
	}
	b.u16(0)
	for _, m := range unityMatrix {
		b.u32(m)
	}
	b.fixed16(t.width)
	b.fixed16(t.height)
	b.close(tkhd)

	mdia := b.open("mdia")
	mdhd := b.openFull("mdhd", 0, 0)
	b.u32(created)
	b.u32(created)
	b.u32(t.cfg.Timescale)
	b.u32(0)
	b.u16(0x55c4) // language "und"
	b.u16(0)
	b.close(mdhd)
	hdlr := b.openFull("hdlr", 0, 0)
	b.u32(0)
	if t.video {
		b.str("vide")
	} else {
		b.str("soun")
	}
	b.zeros(12)
	if t.video {
		b.str("VideoHandler\x00")
	} else {
		b.str("SoundHandler\x00")
	}
	b.close(hdlr)

	minf := b.open("minf")
	if t.video {
		vmhd := b.openFull("vmhd", 0, 1)
		b.zeros(8) // graphicsmode copy, opcolor
		b.close(vmhd)
	} else {
		smhd := b.openFull("smhd", 0, 0)
		b.zeros(4) // balance, reserved
		b.close(smhd)
	}
	dinf := b.open("dinf")
	dref := b.openFull("dref", 0, 0)
	b.u32(1)
	url := b.openFull("url ", 0, 1) // the media is in this file
	b.close(url)
	b.close(dref)
	b.close(dinf)

	stbl := b.open("stbl")
	stsd := b.openFull("stsd", 0, 0)
	b.u32(1)
	w.appendSampleEntry(b, t)
	b.close(stsd)
	for _, typ := range [...]string{"stts", "stsc", "stco"} {
		box := b.openFull(typ, 0, 0)
		b.u32(0) // entry_count
		b.close(box)
	}
	stsz := b.openFull("stsz", 0, 0)
	b.u32(0) // sample_size
	b.u32(0) // sample_count
	b.close(stsz)
	b.close(stbl)
	b.close(minf)
	b.close(mdia)
	b.close(trak)
}

func (w *Writer) appendSampleEntry(b *boxBuf, t *track) {
	if t.video {
		typ, cfgTyp := "avc1", "avcC"
		if t.cfg.Codec == H265 {
			// hvc1 (parameter sets in the sample entry) rather than hev1: Apple's players
			// play only hvc1.
			typ, cfgTyp = "hvc1", "hvcC"
		}
		entry := b.open(typ)
		b.zeros(6)
		b.u16(1) // data_reference_index
		b.zeros(16)
		b.u16(uint16(t.width))
		b.u16(uint16(t.height))
		b.u32(0x00480000) // 72 dpi
		b.u32(0x00480000)
		b.u32(0)
		b.u16(1) // frame_count
		b.zeros(32)
		b.u16(0x0018) // depth
		b.u16(0xffff) // pre_defined -1
		cfg := b.open(cfgTyp)
		b.bytes(t.record)
		b.close(cfg)
		b.close(entry)
		return
	}
	var typ string
	switch t.cfg.Codec {
	case Opus:
		typ = "Opus"
	case AAC:
		typ = "mp4a"
	case PCMA:
		typ = "alaw"
	case PCMU:
		typ = "ulaw"
	}
	entry := b.open(typ)
	b.zeros(6)
	b.u16(1) // data_reference_index
	b.zeros(8)
	b.u16(uint16(t.cfg.Channels))
	b.u16(16) // samplesize
	b.u32(0)  // pre_defined, reserved
	rate := t.cfg.SampleRate
	if t.cfg.Codec == Opus {
		rate = 48000 // Opus always decodes at 48 kHz
	}
	if rate > 0xffff {
		rate = 0 // does not fit the 16.16 field; the timescale says it
	}
	b.fixed16(rate)
	switch t.cfg.Codec {
	case Opus:
		writeDOps(b, t.cfg)
	case AAC:
		writeESDS(b, t.cfg.AudioSpecificConfig)
	}
	b.close(entry)
}
