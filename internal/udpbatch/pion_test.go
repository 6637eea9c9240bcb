package udpbatch

import (
	"bytes"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// loopbackAPI is a Pion API that connects over 127.0.0.1 only, through mux when it is set.
func loopbackAPI(t *testing.T, mux ice.UDPMux) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if mux != nil {
		se.SetICEUDPMux(mux)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se))
}

// TestPionMux: a real WebRTC connection whose device side runs Pion's ICE UDP mux over a Conn
// (GSO on): a data channel message each way and windows of RTP packets written through Pion,
// inside Hold/Flush, arrive intact and in order, and were batched.
func TestPionMux(t *testing.T) {
	const windows, perWindow = 3, 40
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	bc, err := New(uc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mux := webrtc.NewICEUDPMux(nil, bc)
	defer mux.Close() // closes bc

	device, err := loopbackAPI(t, mux).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer device.Close()
	viewer, err := loopbackAPI(t, nil).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer viewer.Close()

	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "device")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := device.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	dc, err := device.CreateDataChannel("d", nil)
	if err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{})
	dc.OnOpen(func() { close(opened) })
	fromViewer := make(chan string, 1)
	dc.OnMessage(func(m webrtc.DataChannelMessage) { fromViewer <- string(m.Data) })
	connected := make(chan struct{})
	device.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			close(connected)
		}
	})

	fromDevice := make(chan string, 1)
	viewer.OnDataChannel(func(d *webrtc.DataChannel) {
		d.OnOpen(func() { _ = d.SendText("from viewer") })
		d.OnMessage(func(m webrtc.DataChannelMessage) { fromDevice <- string(m.Data) })
	})
	got := make(chan *rtp.Packet, windows*perWindow)
	viewer.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			got <- p
		}
	})

	offer, err := device.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(device)
	if err := device.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if err := viewer.SetRemoteDescription(*device.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := viewer.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered = webrtc.GatheringCompletePromise(viewer)
	if err := viewer.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if err := device.SetRemoteDescription(*viewer.LocalDescription()); err != nil {
		t.Fatal(err)
	}

	limit := time.After(waitLimit)
	for _, ch := range []chan struct{}{connected, opened} {
		select {
		case <-ch:
		case <-limit:
			t.Fatal("no connection")
		}
	}
	before := bc.Stats()
	payload := func(seq int) []byte { return bytes.Repeat([]byte{byte(seq)}, 1000) }
	// One window at a time, each read before the next is written: the viewer's socket has
	// the default receive buffer (about 200 KB, ~90 packets of this size on loopback).
	for w := range windows {
		bc.Hold()
		if w == 0 {
			if err := dc.SendText("from device"); err != nil { // leaves on SCTP's goroutine
				t.Fatal(err)
			}
		}
		for i := range perWindow {
			seq := w*perWindow + i
			if err := track.WriteRTP(&rtp.Packet{
				Header:  rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(seq), Timestamp: uint32(seq / 10 * 3000), SSRC: 1},
				Payload: payload(seq),
			}); err != nil {
				t.Fatal(err)
			}
		}
		if err := bc.Flush(); err != nil {
			t.Fatal(err)
		}
		for i := range perWindow {
			seq := w*perWindow + i
			select {
			case p := <-got:
				if int(p.SequenceNumber) != seq || !bytes.Equal(p.Payload, payload(seq)) {
					t.Fatalf("packet %d: got sequence %d, %d bytes", seq, p.SequenceNumber, len(p.Payload))
				}
			case <-limit:
				t.Fatalf("window %d: %d of %d RTP packets; %+v", w, i, perWindow, bc.Stats())
			}
		}
	}
	for _, want := range []struct {
		ch  chan string
		msg string
	}{{fromDevice, "from device"}, {fromViewer, "from viewer"}} {
		select {
		case m := <-want.ch:
			if m != want.msg {
				t.Fatalf("got %q, want %q", m, want.msg)
			}
		case <-limit:
			t.Fatalf("no %q", want.msg)
		}
	}
	st := bc.Stats()
	t.Logf("before the windows: %+v; after: %+v", before, st)
	if st.Batches-before.Batches < windows || st.Errors != 0 {
		t.Fatalf("stats %+v", st)
	}
	if runtime.GOOS == "linux" && (st.GSO == before.GSO || st.Syscalls-before.Syscalls > windows*3) {
		t.Fatalf("windows not batched: %+v", st)
	}
}
