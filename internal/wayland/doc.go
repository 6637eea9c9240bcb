// Package wayland drives a Wayland desktop for remote control: it injects pointer and
// keyboard input and shares the clipboard of a wlroots compositor (sway), speaking the
// Wayland wire protocol itself over the compositor's Unix socket, without libwayland or cgo.
//
// A Desktop uses the virtual-pointer (zwlr_virtual_pointer_manager_v1), virtual-keyboard
// (zwp_virtual_keyboard_manager_v1) and data-control (zwlr_data_control_manager_v1)
// protocols. Keys keep the desktop's own layout: the seat's keymap is uploaded to the virtual
// keyboard, so an evdev code means what the desktop user's layout says; Type enters any
// Unicode text through a second keyboard with a keymap made for the text.
//
// Everything the compositor sends is untrusted input: messages are size-checked, decoding
// never panics (FuzzDecode), and a wl_display.error becomes a *ProtocolError.
package wayland
