# p2pcast — `make help` lists the targets. CI runs `make test` (see .ci/run).
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)

BIN         := bin
GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Where `make run` listens; override with `make run HTTP=0.0.0.0:8080` to watch from another machine.
HTTP        ?= 127.0.0.1:8080
# What `make run` sends as audio: the test tone (a beep each second, in step with a flash in the
# picture; the page starts muted). `make run AUDIO=` sends none; an ALSA device name sends its sound.
AUDIO       ?= testtone
DEPS_STAMP  := $(BIN)/.deps

.PHONY: help deps build cross deb image test-deb run test test-unit test-cross bench-footprint test-c test-e2e test-latency test-avsync test-input test-nat test-network test-network-all lint fuzz bench bench-cpu bench-viewers bench-latency bench-avsync bench-input bench-nat bench-relay bench-devices bench-sfu repeat clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(DEPS_STAMP): scripts/install-deps.sh go.mod
	./scripts/install-deps.sh
	@mkdir -p $(BIN) && touch $@

deps: $(DEPS_STAMP) ## install system packages and Go modules (safe to run twice)

build: $(DEPS_STAMP) ## build bin/p2pcast and bin/p2pcast-capture
	$(MAKE) -C capture OUT=$(abspath $(BIN))
	$(GO) build -o $(BIN)/p2pcast ./cmd/p2pcast

# The board (docs/board.md): a Luckfox Pico Max (RV1106, one Cortex-A7, 256 MB). The device
# build (-tags device) leaves out the hub, TURN server, benchmarks, Chromium driver, view, the
# profiler and the desktop; nethttpomithttp2 leaves out HTTP/2, which a device serving plain
# HTTP never speaks. The producer leaves out the desktop sources, keeps the cameras (V4L2: USB
# webcams on the board) and links x264, Opus, libyuv and libturbojpeg in.
CROSS_DIR        := $(BIN)/linux-arm
CROSS_STAMP      := $(BIN)/.cross-deps
DEVICE_TAGS      := device,nethttpomithttp2
DEVICE_GOFLAGS   := -tags $(DEVICE_TAGS) -trimpath -ldflags='-s -w'
CROSS_CC         ?= arm-linux-gnueabihf-gcc
CROSS_PKG_CONFIG ?= env PKG_CONFIG_LIBDIR=/usr/lib/arm-linux-gnueabihf/pkgconfig:/usr/share/pkgconfig pkg-config
CROSS_CFLAGS     ?= -O2 -mcpu=cortex-a7 -mfpu=neon-vfpv4

$(CROSS_STAMP): scripts/install-cross-deps.sh
	./scripts/install-cross-deps.sh
	@mkdir -p $(BIN) && touch $@

cross: $(CROSS_STAMP) ## bin/linux-arm/: the board's p2pcast (device build) and p2pcast-capture, linux/arm GOARM=7
	$(MAKE) -C capture OUT=$(abspath $(CROSS_DIR)) CC=$(CROSS_CC) PKG_CONFIG='$(CROSS_PKG_CONFIG)' \
	  CFLAGS='$(CROSS_CFLAGS)' WAYLAND=0 PIPEWIRE=0 V4L2=1 STATIC_CODECS=1
	GOOS=linux GOARCH=arm GOARM=7 CGO_ENABLED=0 $(GO) build $(DEVICE_GOFLAGS) -o $(CROSS_DIR)/p2pcast ./cmd/p2pcast

# Debian packages (packaging/, scripts/build-deb.sh): amd64 is the full build with the device
# and hub units, armhf the board's device build. The version is the commit's.
DEB_DIR     := $(BIN)/deb
DEB_VERSION ?= 0.1.0+git$(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
deb: build cross ## Debian packages under bin/deb/: amd64 (device and hub) and armhf (the board's device build), with sandboxed systemd units
	@mkdir -p $(DEB_DIR)/amd64 $(DEB_DIR)/armhf
	$(GO) build -trimpath -ldflags='-s -w -X main.version=$(DEB_VERSION)' -o $(DEB_DIR)/amd64/p2pcast ./cmd/p2pcast
	cp $(BIN)/p2pcast-capture $(DEB_DIR)/amd64/
	GOOS=linux GOARCH=arm GOARM=7 CGO_ENABLED=0 $(GO) build -tags $(DEVICE_TAGS) -trimpath \
	  -ldflags='-s -w -X main.version=$(DEB_VERSION)' -o $(DEB_DIR)/armhf/p2pcast ./cmd/p2pcast
	cp $(CROSS_DIR)/p2pcast-capture $(DEB_DIR)/armhf/
	rm -f $(DEB_DIR)/*.deb
	./scripts/build-deb.sh amd64 $(DEB_VERSION) $(DEB_DIR)/amd64 $(DEB_DIR)
	./scripts/build-deb.sh armhf $(DEB_VERSION) $(DEB_DIR)/armhf $(DEB_DIR)

# The hub's container image (packaging/container/Containerfile): a static binary FROM scratch,
# built with Debian's buildah (no registry is reachable here: saved as an OCI archive).
IMAGE_DIR := $(BIN)/image
image: $(DEPS_STAMP) ## the hub's container image: bin/image/p2pcast-hub.oci.tar (FROM scratch, static binary, runs as nobody)
	@rm -rf $(IMAGE_DIR)/ctx && mkdir -p $(IMAGE_DIR)/ctx/data
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w -X main.version=$(DEB_VERSION)' -o $(IMAGE_DIR)/ctx/p2pcast ./cmd/p2pcast
	cp packaging/container/Containerfile $(IMAGE_DIR)/ctx/
	./scripts/build-image.sh $(IMAGE_DIR)/ctx $(IMAGE_DIR)/p2pcast-hub.oci.tar p2pcast-hub:$(subst +,-,$(DEB_VERSION))

# Each package installed into a scratch root (dpkg --root, kept in bin/deb/root-ARCH between
# runs), its binaries run (armhf under qemu), its units checked by systemd-analyze (test/deb).
test-deb: deb image ## install the packages into scratch roots, run them, verify the systemd units; run the hub image
	cd test/deb && P2PCAST_DEB_DIR=$(abspath $(DEB_DIR)) P2PCAST_DEB_VERSION=$(DEB_VERSION) \
	  P2PCAST_IMAGE=$(abspath $(IMAGE_DIR))/p2pcast-hub.oci.tar \
	  $(GO) test -tags deb -count=1 -timeout 5m -v . | grep -vE '^(=== RUN)'; exit $${PIPESTATUS[0]}

# The ARM device and producer under qemu-arm-static stream to the host's `p2pcast view` (test/cross).
test-cross: build cross ## the board's build under qemu: the ARM device streams the test pattern and tone to a viewer on the host
	cd test/cross && P2PCAST_BIN=$(abspath $(BIN)) P2PCAST_REQUIRE_CROSS=1 $(GO) test -tags cross -count=1 -timeout 3m -run '^TestDeviceUnderQEMU$$' -v .

# Footprint budgets (docs/performance.md "Footprint"): the stripped armv7 device build's size, and
# the device build's memory measured natively (RSS under qemu would count the emulator's).
bench-footprint: build cross ## the board's footprint: armv7 binary size and what is big in it, device RSS idle and with 1/4/8 viewers (median of 3 runs, per-viewer slope), the device's GOGC/GOMEMLIMIT against Go's defaults (~5 min)
	cd test/cross && P2PCAST_BIN=$(abspath $(BIN)) P2PCAST_FOOTPRINT=1 P2PCAST_DEVICE_TAGS=$(DEVICE_TAGS) \
	  $(GO) test -tags cross -count=1 -timeout 10m -run '^TestFootprint$$' -v . | grep -vE '^(=== |--- PASS)'

# Off loopback, viewers need a token: the device prints a pairing link (and its QR code) that carries one.
RUN_AUTH     = $(if $(filter 127.% localhost:% [::1]:%,$(HTTP)),,--pair)

run: build ## run a device streaming the test pattern and tone; prints the URL to open (a pairing link off loopback)
	$(BIN)/p2pcast device --http $(HTTP) $(RUN_AUTH) $(if $(AUDIO),--audio-in $(AUDIO))

test: build lint test-unit test-c test-cross test-deb test-e2e test-latency test-avsync test-input test-nat test-network ## everything: lint, Go and C tests, the board's build under qemu, browser end-to-end, latency and A/V sync smoke runs, NAT matrix, network lab

lint: $(DEPS_STAMP) ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet -tags e2e,nat,network,deb ./...
	$(GO) vet -tags device,cross ./...
	$(GO) run $(STATICCHECK) -tags e2e,nat,network,deb ./...

test-unit: $(DEPS_STAMP) ## Go unit and integration tests (race detector on)
	P2PCAST_REQUIRE_TOOLS=1 $(GO) test -race -count=1 -timeout 10m ./...

test-c: $(DEPS_STAMP) ## C tests of p2pcast-capture
	$(MAKE) -C capture test OUT=$(abspath $(BIN))

# The browser test runs in a private network namespace with only loopback (see test/e2e):
# traffic stays on 127.0.0.1 and Chromium's calls to outside hosts fail fast.
test-e2e: build ## end-to-end test with real headless Chromium
	$(GO) test -tags e2e -c -o $(BIN)/e2e.test ./test/e2e
	unshare -n -- sh -c 'ip link set lo up && cd test/e2e && P2PCAST_BIN=$(abspath $(BIN)) ../../$(BIN)/e2e.test -test.v -test.count=1 -test.timeout 8m'

# The NAT matrix (test/nat): a hub with its embedded TURN and one with coturn on a "public"
# segment, devices and viewers behind no NAT, full-cone, port-restricted and symmetric NATs and a
# UDP-blocking network, all in network namespaces the test creates and removes (needs root).
NAT_TEST = $(GO) test -tags nat -c -o $(BIN)/nat.test ./test/nat && \
	cd test/nat && P2PCAST_BIN=$(abspath $(BIN)) P2PCAST_REQUIRE_NETNS=1 ../../$(BIN)/nat.test -test.v -test.count=1 -test.timeout 20m

test-nat: build ## NAT traversal matrix in network namespaces (root): one line per cell
	set -o pipefail; $(NAT_TEST) | grep -v '^=== '

bench-sfu: build ## time to first frame through Janus vs peer to peer (5 joins each), the device's upload with viewers through the SFU (root; docs/sfu.md)
	set -o pipefail; export P2PCAST_SFU_JOINS=5; $(NAT_TEST) -test.run '^TestSFU$$' | grep -E '^(sfu|--- |ok|FAIL)'

bench-relay: build ## TURN server CPU per relayed packet: the embedded one beside coturn (loopback, server on CPU 0)
	$(BIN)/p2pcast bench relay --allocations 50 --pps 200 --duration 10s

bench-nat: build ## time to first frame through the hub: 4 joins per NAT cell, ≥ 20 per class (root)
	set -o pipefail; export P2PCAST_NAT_JOINS=4; $(NAT_TEST) -test.run 'TestNATMatrix$$' | grep -E '^(first frame|--- |ok|FAIL)'

# The network lab (test/network, docs/network-lab.md): a device and Chromium / `p2pcast view` viewers
# on a routed LAN in network namespaces, each viewer's downlink shaped (tbf) or lossy (iptables)
# while the stream plays; a table per viewer, one row a second. One test: make test-network-all RUN=TestShapedLink
# `make test` runs the lab tests that hold run after run: the harness (unconstrained), a link cut
# to 40 % of the stream (with its control, adaptation off), 2 % random loss, the busy pattern
# behind 800 kbit/s, two viewers (one behind 800 kbit/s), a 4 → 0.8 → 4 Mbit/s step, and the CLI
# viewer. The loss-recovery comparison is a measurement: `make test-network-all` runs every
# case, RUN=PATTERN picks some.
NETWORK_TESTS ?= ^(TestUnconstrained|TestShapedLink|TestRandomLoss|TestShapedBusy|TestTwoViewers|TestBandwidthStep|TestViewCLI)$$
NETWORK_TEST = $(GO) test -tags network -c -o $(BIN)/network.test ./test/network && \
	cd test/network && P2PCAST_BIN=$(abspath $(BIN)) P2PCAST_REQUIRE_NETNS=1 ../../$(BIN)/network.test -test.v -test.count=1 -test.timeout 7m
test-network: build ## the network lab's cases but the loss-recovery comparison: harness, 40 % link, 2 % loss, busy at 800 kbit/s, two viewers, bandwidth step, CLI viewer (root)
	$(NETWORK_TEST) -test.run '$(or $(RUN),$(NETWORK_TESTS))'
test-network-all: build ## every network lab case, the loss-recovery comparison included (root, about 8½ min)
	$(NETWORK_TEST) $(if $(RUN),-test.run '$(RUN)')

fuzz: $(DEPS_STAMP) ## run every fuzzer for FUZZTIME each (default 20s)
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-20s} $$pkg || exit 1; \
	  done; done

bench: $(DEPS_STAMP) ## Go benchmarks (fan-out path: ns and allocations per packet)
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

bench-devices: build ## 1,000 then 10,000 device links from one address: hub memory per link, relink time after a hub restart
	$(BIN)/p2pcast bench devices --devices 1000 --restarts 3
	$(BIN)/p2pcast bench devices --devices 10000 --restarts 1

bench-viewers: build ## 50 WHEP viewers of a 720p30 2 Mbps test pattern
	$(BIN)/p2pcast bench viewers --viewers 50 --duration 10s --join-interval 100ms
	$(BIN)/p2pcast bench viewers --viewers 50 --duration 10s

# Device CPU per packet sent, marginal between BENCH_LOW and BENCH_HIGH viewers (docs/performance.md):
# the device on CPU 0 with one shared UDP port, the busy pattern at 1 Mbit/s, the viewers on the
# other core. The marginal cost leaves out what does not grow with viewers.
BENCH_LOW ?= 50
BENCH_HIGH ?= 300
BENCH_CPU = $(BIN)/p2pcast bench viewers --duration 30s --join-interval 20ms --ice-udp-port 41000 \
	--device-cpus 0 --pattern busy --bitrate 1M --json
bench-cpu: build ## device CPU µs per packet sent, marginal from BENCH_LOW (50) to BENCH_HIGH (300) viewers
	@lo=$$($(BENCH_CPU) --viewers $(BENCH_LOW) | tail -1) && hi=$$($(BENCH_CPU) --viewers $(BENCH_HIGH) | tail -1) && \
	echo "$(BENCH_LOW) viewers: $$lo" && echo "$(BENCH_HIGH) viewers: $$hi" && \
	printf '%s\n%s\n' "$$lo" "$$hi" | sed -E 's/.*"device_us_per_packet":([0-9.e+-]+).*"device_packets_per_s":([0-9.e+-]+).*/\1 \2/' | \
	awk 'NR==1{u1=$$1;p1=$$2} NR==2{u2=$$1;p2=$$2} END{if (p2>p1) printf "marginal device CPU per packet, $(BENCH_LOW) → $(BENCH_HIGH) viewers: %.2f µs (%.2f at $(BENCH_LOW), %.2f at $(BENCH_HIGH))\n", (u2*p2-u1*p1)/(p2-p1), u1, u2; else {print "bench-cpu: no packet counts to compare"; exit 1}}'

# A short run of the latency benchmark: it must measure (exit 0), whatever the numbers.
test-latency: build ## short capture→present measurement in Chromium (root)
	$(BIN)/p2pcast bench latency --duration 3s --joins 3 --json

# A short run of the desktop input benchmark: a headless sway, keys in Chromium, the flip seen
# (exit 0), whatever the numbers.
test-input: build ## short input → photon measurement on a headless Wayland desktop (root)
	$(BIN)/p2pcast bench input --samples 5 --static 2s --changing 2s --json

bench-input: build ## input → photon on a 1920x1080 headless sway desktop, a static desktop's CPU, a changing one's fps (root)
	$(BIN)/p2pcast bench input --samples 60

# A short run of the A/V sync benchmark: the page hears the beeps and sees the flashes (exit 0),
# whatever the numbers (lip sync needs ~20 s to settle; bench-avsync waits for it).
test-avsync: build ## short audio/video sync measurement in Chromium (root)
	$(BIN)/p2pcast bench avsync --duration 5s --warmup 1s --json

bench-avsync: build ## audio/video sync as Chromium presents it: beep onset against the flash, 3 runs (root)
	for i in 1 2 3; do $(BIN)/p2pcast bench avsync --duration 30s --json || exit 1; done

# Each run re-executes itself in a private network namespace with only loopback (needs root) and
# prints one JSON line last on stdout; see `bin/p2pcast bench latency --help`.
bench-latency: build ## browser latency by stage and time to first frame: 720p30, 1080p30, 1080p60 (root)
	$(BIN)/p2pcast bench latency --size 1280x720 --fps 30 --json
	$(BIN)/p2pcast bench latency --size 1920x1080 --fps 30 --bitrate 4M --json
	$(BIN)/p2pcast bench latency --size 1920x1080 --fps 60 --bitrate 4M --json

# A flaky test is a bug: prove a suite by running it many times in a row (docs/performance.md).
repeat: ## make TARGET (default test) RUNS times in a row (default 5), e.g. TARGET=test-nat RUNS=20; sums up NAT join times
	scripts/repeat.sh $(or $(TARGET),test) $(or $(RUNS),5)

clean: ## remove build outputs
	rm -rf $(BIN) capture/build
