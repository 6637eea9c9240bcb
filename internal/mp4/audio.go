package mp4

import (
	"fmt"

	"github.com/p2pcast/p2pcast/internal/media"
)

// parseASC reads an AudioSpecificConfig for the sample entry, bounded so that every esds
// descriptor stays under 128 bytes.
func parseASC(asc []byte) (media.AudioSpecificConfig, error) {
	if len(asc) < 2 || len(asc) > 64 {
		return media.AudioSpecificConfig{}, fmt.Errorf("%w: AAC AudioSpecificConfig of %d bytes", ErrTrack, len(asc))
	}
	c, err := media.ParseAudioSpecificConfig(asc)
	if err != nil {
		return c, fmt.Errorf("%w: %w", ErrTrack, err)
	}
	return c, nil
}

// writeESDS writes an esds box (ISO/IEC 14496-1 ES_Descriptor) for AAC.
func writeESDS(b *boxBuf, asc []byte) {
	esds := b.openFull("esds", 0, 0)
	descriptor := func(tag uint8, size int) {
		b.u8(tag)
		b.u8(uint8(size)) // every descriptor here is under 128 bytes (parseASC bounds asc)
	}
	decSpecific := 2 + len(asc)
	decConfig := 13 + decSpecific
	descriptor(0x03, 3+2+decConfig+3) // ES_Descriptor
	b.u16(0)                          // ES_ID
	b.u8(0)                           // no dependency, URL or OCR stream
	descriptor(0x04, decConfig)       // DecoderConfigDescriptor
	b.u8(0x40)                        // objectTypeIndication: MPEG-4 Audio
	b.u8(0x05<<2 | 1)                 // streamType audio, upStream 0, reserved 1
	b.u8(0)                           // bufferSizeDB (24 bits): unknown
	b.u16(0)
	b.u32(0)                   // maxBitrate: unknown
	b.u32(0)                   // avgBitrate: unknown
	descriptor(0x05, len(asc)) // DecoderSpecificInfo
	b.bytes(asc)
	descriptor(0x06, 1) // SLConfigDescriptor
	b.u8(0x02)          // predefined: MP4
	b.close(esds)
}

// writeDOps writes an OpusSpecificBox ("Encapsulation of Opus in ISO Base Media File
// Format" 4.3.2) for channel mapping family 0 (mono or stereo).
func writeDOps(b *boxBuf, t Track) {
	dops := b.open("dOps")
	b.u8(0) // Version
	b.u8(uint8(t.Channels))
	b.u16(t.PreSkip)
	b.u32(uint32(t.SampleRate)) // InputSampleRate
	b.u16(0)                    // OutputGain
	b.u8(0)                     // ChannelMappingFamily
	b.close(dops)
}

// opusSamples returns the duration of an Opus packet in 48 kHz samples from its TOC byte
// (RFC 6716 3.1), or 0 for a packet too short to tell.
func opusSamples(packet []byte) int {
	if len(packet) == 0 {
		return 0
	}
	toc := packet[0]
	config := toc >> 3
	var frame int // samples at 48 kHz
	switch {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		frame = [4]int{480, 960, 1920, 2880}[config&3]
	case config < 16: // hybrid: 10, 20 ms
		frame = [2]int{480, 960}[config&1]
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = [4]int{120, 240, 480, 960}[config&3]
	}
	switch toc & 3 {
	case 0:
		return frame
	case 1, 2:
		return 2 * frame
	}
	if len(packet) < 2 {
		return 0
	}
	return int(packet[1]&0x3f) * frame
}
