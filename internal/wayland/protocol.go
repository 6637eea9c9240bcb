package wayland

// The parts of the protocols this package speaks: each interface's events (to decode them)
// and the opcodes of the requests it sends. Sources: wayland.xml (core),
// xdg-output-unstable-v1.xml, and wlroots' wlr-virtual-pointer-unstable-v1.xml (v2),
// virtual-keyboard-unstable-v1.xml, wlr-data-control-unstable-v1.xml. protocol_test.go checks
// the core and xdg-output tables against the XML installed on the machine.

// iface is an interface as the decoder needs it: its name and its events' signatures, in
// opcode order.
type iface struct {
	name   string
	events []event
}

type event struct {
	name string
	sig  string
}

var (
	ifDisplay = &iface{name: "wl_display", events: []event{
		{"error", "ous"},
		{"delete_id", "u"},
	}}
	ifRegistry = &iface{name: "wl_registry", events: []event{
		{"global", "usu"},
		{"global_remove", "u"},
	}}
	ifCallback = &iface{name: "wl_callback", events: []event{
		{"done", "u"},
	}}
	ifSeat = &iface{name: "wl_seat", events: []event{
		{"capabilities", "u"},
		{"name", "s"},
	}}
	ifKeyboard = &iface{name: "wl_keyboard", events: []event{
		{"keymap", "uhu"},
		{"enter", "uoa"},
		{"leave", "uo"},
		{"key", "uuuu"},
		{"modifiers", "uuuuu"},
		{"repeat_info", "ii"},
	}}
	ifOutput = &iface{name: "wl_output", events: []event{
		{"geometry", "iiiiissi"},
		{"mode", "uiii"},
		{"done", ""},
		{"scale", "i"},
		{"name", "s"},
		{"description", "s"},
	}}
	ifXdgOutputManager = &iface{name: "zxdg_output_manager_v1"}
	ifXdgOutput        = &iface{name: "zxdg_output_v1", events: []event{
		{"logical_position", "ii"},
		{"logical_size", "ii"},
		{"done", ""},
		{"name", "s"},
		{"description", "s"},
	}}
	ifVirtualPointerManager = &iface{name: "zwlr_virtual_pointer_manager_v1"}
	ifVirtualPointer        = &iface{name: "zwlr_virtual_pointer_v1"}
	ifVirtualKeyboardMgr    = &iface{name: "zwp_virtual_keyboard_manager_v1"}
	ifVirtualKeyboard       = &iface{name: "zwp_virtual_keyboard_v1"}
	ifDataControlManager    = &iface{name: "zwlr_data_control_manager_v1"}
	ifDataControlDevice     = &iface{name: "zwlr_data_control_device_v1", events: []event{
		{"data_offer", "n"},
		{"selection", "?o"},
		{"finished", ""},
		{"primary_selection", "?o"},
	}}
	ifDataControlSource = &iface{name: "zwlr_data_control_source_v1", events: []event{
		{"send", "sh"},
		{"cancelled", ""},
	}}
	ifDataControlOffer = &iface{name: "zwlr_data_control_offer_v1", events: []event{
		{"offer", "s"},
	}}
)

// allInterfaces lists every interface above (for the fuzz test and the XML check).
var allInterfaces = []*iface{
	ifDisplay, ifRegistry, ifCallback, ifSeat, ifKeyboard, ifOutput, ifXdgOutputManager,
	ifXdgOutput, ifVirtualPointerManager, ifVirtualPointer, ifVirtualKeyboardMgr,
	ifVirtualKeyboard, ifDataControlManager, ifDataControlDevice, ifDataControlSource,
	ifDataControlOffer,
}

// Request opcodes.
const (
	displaySync        = 0
	displayGetRegistry = 1

	registryBind = 0

	seatGetKeyboard = 1

	keyboardRelease = 0 // since wl_seat v3

	outputRelease = 0 // since v3

	xdgOutputManagerDestroy      = 0
	xdgOutputManagerGetXdgOutput = 1
	xdgOutputDestroy             = 0

	vpManagerCreate           = 0
	vpManagerDestroy          = 1
	vpManagerCreateWithOutput = 2 // since v2

	vpMotion         = 0
	vpMotionAbsolute = 1
	vpButton         = 2
	vpAxis           = 3
	vpFrame          = 4
	vpAxisSource     = 5
	vpAxisStop       = 6
	vpAxisDiscrete   = 7
	vpDestroy        = 8

	vkManagerCreate = 0

	vkKeymap    = 0
	vkKey       = 1
	vkModifiers = 2
	vkDestroy   = 3

	dcManagerCreateSource = 0
	dcManagerGetDevice    = 1
	dcManagerDestroy      = 2

	dcDeviceSetSelection = 0
	dcDeviceDestroy      = 1

	dcSourceOffer   = 0
	dcSourceDestroy = 1

	dcOfferReceive = 0
	dcOfferDestroy = 1
)

// Event opcodes handled here.
const (
	displayError    = 0
	displayDeleteID = 1

	registryGlobal       = 0
	registryGlobalRemove = 1

	seatCapabilities = 0

	keyboardKeymap = 0

	outputMode = 1
	outputDone = 2
	outputName = 4

	xdgOutputName = 3

	dcDeviceDataOffer = 0
	dcDeviceSelection = 1
	dcDeviceFinished  = 2
	dcDevicePrimary   = 3

	dcSourceSend      = 0
	dcSourceCancelled = 1

	dcOfferOffer = 0
)

// Enumerations used.
const (
	seatCapabilityKeyboard = 2

	keymapFormatXKBv1 = 1

	keyStateReleased = 0
	keyStatePressed  = 1

	buttonStateReleased = 0
	buttonStatePressed  = 1

	axisVertical   = 0
	axisHorizontal = 1

	axisSourceWheel      = 0
	axisSourceContinuous = 2

	outputModeCurrent = 1
)
