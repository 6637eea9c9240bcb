package janus

import (
	"context"
	"errors"
	"fmt"
)

// VideoRoom is the name of Janus's SFU plugin.
const VideoRoom = "janus.plugin.videoroom"

// Room is what CreateRoom asks of a VideoRoom room.
type Room struct {
	ID uint64
	// Description shows in Janus's own tools.
	Description string
	// Secret, if set, is needed to edit or destroy the room; Pin to join it.
	Secret, Pin string
}

// CreateRoom makes a temporary room (gone when Janus restarts) for one publisher sending H.264
// and Opus; a room that exists already is fine (the device published before).
func CreateRoom(ctx context.Context, h *Handle, r Room) error {
	body := map[string]any{"request": "create", "room": r.ID, "permanent": false, "is_private": true,
		"publishers": 1, "videocodec": "h264", "audiocodec": "opus", "notify_joining": false,
		"description": r.Description}
	if r.Secret != "" {
		body["secret"] = r.Secret
	}
	if r.Pin != "" {
		body["pin"] = r.Pin
	}
	_, err := h.Request(ctx, body, nil)
	var je *Error
	if errors.As(err, &je) && je.Plugin && je.Code == CodeRoomExists {
		return nil
	}
	return err
}

// Publish joins room as its publisher and configures it with offer in one request
// (joinandconfigure); it returns the feed id Janus gave the publisher and Janus's answer.
func Publish(ctx context.Context, h *Handle, room uint64, pin, display string, offer string) (feed uint64, answer string, err error) {
	body := map[string]any{"request": "joinandconfigure", "ptype": "publisher", "room": room, "display": display,
		"audio": true, "video": true, "data": true}
	if pin != "" {
		body["pin"] = pin
	}
	m, err := h.Request(ctx, body, &JSEP{Type: "offer", SDP: offer})
	if err != nil {
		return 0, "", err
	}
	var d struct {
		VideoRoom string `json:"videoroom"`
		ID        uint64 `json:"id"`
	}
	if err := m.Plugin(&d); err != nil {
		return 0, "", err
	}
	if d.VideoRoom != "joined" || d.ID == 0 {
		return 0, "", fmt.Errorf("%w: publish answered %q (feed %d)", ErrBadMessage, d.VideoRoom, d.ID)
	}
	if m.JSEP == nil || m.JSEP.Type != "answer" {
		return 0, "", fmt.Errorf("%w: publish answered without an SDP answer", ErrBadMessage)
	}
	return d.ID, m.JSEP.SDP, nil
}

// Subscribe joins room as a subscriber of feed's streams named by mids (all of them when
// mids is empty) and returns Janus's offer.
func Subscribe(ctx context.Context, h *Handle, room uint64, pin string, feed uint64, mids []string) (offer string, err error) {
	var streams []map[string]any
	if len(mids) == 0 {
		streams = append(streams, map[string]any{"feed": feed})
	}
	for _, mid := range mids {
		streams = append(streams, map[string]any{"feed": feed, "mid": mid})
	}
	body := map[string]any{"request": "join", "ptype": "subscriber", "room": room, "streams": streams}
	if pin != "" {
		body["pin"] = pin
	}
	m, err := h.Request(ctx, body, nil)
	if err != nil {
		return "", err
	}
	var d struct {
		VideoRoom string `json:"videoroom"`
	}
	if err := m.Plugin(&d); err != nil {
		return "", err
	}
	if d.VideoRoom != "attached" || m.JSEP == nil || m.JSEP.Type != "offer" {
		return "", fmt.Errorf("%w: subscribe answered %q without an offer", ErrBadMessage, d.VideoRoom)
	}
	return m.JSEP.SDP, nil
}

// Start gives a subscriber's answer to Janus: media starts flowing.
func Start(ctx context.Context, h *Handle, answer string) error {
	_, err := h.Request(ctx, map[string]any{"request": "start"}, &JSEP{Type: "answer", SDP: answer})
	return err
}

// RestartICE asks Janus for a new offer with fresh ICE credentials on a subscriber handle.
func RestartICE(ctx context.Context, h *Handle) (offer string, err error) {
	m, err := h.Request(ctx, map[string]any{"request": "configure", "restart": true}, nil)
	if err != nil {
		return "", err
	}
	if m.JSEP == nil || m.JSEP.Type != "offer" {
		return "", fmt.Errorf("%w: restart answered without an offer", ErrBadMessage)
	}
	return m.JSEP.SDP, nil
}
