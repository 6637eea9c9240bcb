// Package natlab builds a small Internet inside Linux network namespaces so tests can prove
// WebRTC connectivity across real NATs: a "public" segment (a bridge inside a namespace of
// its own, 100.64.0.0/24) with hosts on it, and private sites (10.0.N.0/24) behind router
// namespaces that translate addresses like a full-cone, port-restricted-cone or symmetric NAT,
// or that let no UDP out at all.
//
// For tests of links rather than NATs, [Lab.LAN] builds a routed network without NAT: a router
// namespace with one veth link per host ([LAN.Add]), whose downlink toward the host can be shaped
// ([Link.Shape], tc tbf) and made to lose UDP at random ([Link.Loss], iptables statistic), also
// while media flows, with counters of what the shaper and the loss rule did ([Link.Counters]).
// docs/network-lab.md describes it.
//
// Processes (p2pcast, Chromium, coturn) run inside a host through [Host.Command] or
// [Host.Start]; Go code in the test process can open sockets inside a host with
// [Host.ListenPacket], [Host.Listen] and [Host.Dial]. Nothing changes in the machine's own
// network namespace: every address, bridge and firewall rule lives in namespaces the lab
// creates, and [Lab.Close] (registered with t.Cleanup by [New]) kills every process started
// in them and deletes them.
//
// A test of a device behind a cone NAT and a viewer behind a symmetric one looks like:
//
//	lab := natlab.New(t)
//	hub := lab.PublicHost("hub") // 100.64.0.2
//	turn := lab.StartCoturn(t, lab.PublicHost("turn"), natlab.CoturnOptions{})
//	device := lab.Site("device", natlab.PortRestricted)
//	viewer := lab.Site("viewer", natlab.Symmetric)
//	hubProc := hub.Start(t, bin, "hub", "--listen", hub.IP.String()+":8080")
//	... device.Start(t, ...); viewer.Start(t, "chromium", ...) with turn.URLs() and
//	turn.Credentials("viewer", time.Hour) as ICE servers.
//
// The lab needs root, iproute2's ip (and tc for LANs) and iptables; Sites also use the kernel's conntrack and
// [Lab.StartCoturn] Debian's coturn (scripts/install-deps.sh installs them). Without root,
// [New] skips the test unless P2PCAST_REQUIRE_NETNS is set, in which case it fails.
package natlab
